package controller

import "github.com/pocketstore/pocket/controller/state"

// Profile returns the profile of job name (its last runs, newest first)
// and what the next job of the name registered without size hints is
// allotted under the controller's policy (Policy.NextSize); false when
// the name has none. For a control-plane call behind `pocket job profile
// NAME` on a running controller.
func (c *Controller) Profile(name string) (state.Profile, NextSize, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.prof.profile(name)
	if !ok {
		return p, NextSize{}, false
	}
	return p, c.cfg.Policy.NextSize(&p), true
}
