package controller

import "github.com/pocketstore/pocket/controller/state"

// Profile returns the profile of job name (its last runs, newest first)
// and the size the next job of the name gets without size hints; false
// when the name has none. For a control-plane call behind `pocket job
// profile NAME` on a running controller.
func (c *Controller) Profile(name string) (state.Profile, Learned, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.prof.profile(name)
	if !ok {
		return p, Learned{}, false
	}
	return p, EstimateProfile(&p), true
}
