package pocket

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Puts racing for the last of a tier. A chunked put takes a node's space
// chunk by chunk (an NVMe tier reserves a chunk's extents as its header
// arrives), so puts that start together into a tier with room for some
// of them each take part of it, and most are refused before any has all
// its chunks: a new user's trial put 48 values of 8 MiB at once into a
// 256 MiB NVMe tier, 13 of them were stored (104 MiB) and 35 refused,
// and 18 more then fitted one at a time. A put refused for space after a
// chunk of its own was stored (there was room when it began) drops its
// chunks, as every failed put does, waits a random pause and tries again
// with a new version, up to spaceRaceRetries times: the room the losers
// give back goes to those that try again. A put whose first chunk is
// refused fails at once, as one into a full tier should; a put larger
// than the room left is sent up to spaceRaceRetries+1 times before it
// fails.
const spaceRaceRetries = 5

// spaceRacePause is the pause before try number try (0: the first retry):
// random, up to 50 ms doubling each try, so that the puts that lost
// together do not race again together.
func spaceRacePause(try int) time.Duration {
	return time.Duration(rand.Int64N(int64(50*time.Millisecond) << try))
}

// spaceRace reports whether w's failure err is a refusal for space after
// w stored a chunk.
func (w *objectWrite) spaceRace(err error) bool {
	if !errors.Is(err, wire.ErrNoSpace) {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.nodes) > 0
}

// againAfterSpaceRace reports whether a put that lost a race for space
// (spaceRace) on try (0: the first) should try again, after waiting its
// pause; false once ctx ends.
func againAfterSpaceRace(ctx context.Context, w *objectWrite, err error, try int) bool {
	if try >= spaceRaceRetries || !w.spaceRace(err) {
		return false
	}
	return sleepCtx(ctx, spaceRacePause(try))
}
