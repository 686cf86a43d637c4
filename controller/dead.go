package controller

import "time"

// DefaultDeadNodeGrace is Config.DeadNodeGrace's default.
const DefaultDeadNodeGrace = 30 * time.Second
