// Package workload runs serverless analytics jobs against a store: the
// jobs Pocket's users run (a sort with a shuffle, a PyWren-style map with
// one reduce, a parameter server, an ExCamera-style chain of tasks), with
// the same code against our store (through the pocket SDK) and against
// Redis (RESP over plain TCP), so the two can be compared side by side.
//
// # Roles
//
// A coordinator (Run) splits a workload into phases of tasks. Each task
// runs in a worker with its own client, as a lambda would: by default a
// separate OS process (Subprocess re-executes the pocket binary as
// `pocket worker`), or a goroutine (InProcess, for tests) through the very
// same RunTask. A task is handed over as one JSON object (Task) on the
// worker's stdin, so a job's capability token never shows in a process
// listing; the worker answers with one JSON TaskResult on stdout.
//
// # Phases and timing
//
// Every workload has an untimed setup phase that writes its input (the
// input's checksum is computed from the generator, not read back), one or
// more timed phases, and an untimed check phase whose tasks read the
// output back from the store. Result.TotalSeconds is the wall time of the
// timed phases, worker start-up included, as a lambda's would be.
// Result.ShuffleSeconds (sort only) is the time spent moving shuffle data:
// the slowest mapper's time writing its shuffle partitions plus the slowest
// reducer's time reading them. BytesMoved counts every payload byte put or
// got by the timed phases.
//
// # Verification
//
// Every workload checks its own output and Result.Verified is true only
// when it checked out; any mismatch is described in Result.VerifyError.
//
// # Keys
//
// All keys of a run start with Spec.Prefix (a fresh one per run), so runs
// against a shared Redis never collide; the coordinator deletes them after
// the check phase unless told to keep them.
package workload
