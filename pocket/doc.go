// Package pocket is the client SDK: jobs register with hints, receive a
// placement map from the controller, and then talk to storage nodes
// directly, one network round trip per small operation.
//
// Two layers:
//
//   - An idiomatic Go API (Store, Job) with context.Context, streaming
//     io.Reader/io.Writer for large objects, and put/get of local files.
//   - A Pocket-compatible layer (compat.go) with pocket.py's names and
//     meanings: RegisterJob, DeregisterJob, Connect, Put, PutBuffer, Get,
//     GetBuffer, Lookup, Delete, CreateDir, CountFiles, Close.
//
// # Placement
//
// Each (key, chunk) lives on the node that weighted rendezvous hashing
// (internal/placement) picks from the job's map, so the SDK never asks
// anyone where a key is. A node dead past the controller's grace leaves
// the map and is listed in Map.Lost; reads of the keys it held answer
// ErrLost ("recompute it") instead of ErrNotFound, by placing the key over
// the map's nodes and its lost nodes together; a chunked object whose
// chunk was on a lost node answers ErrLost too (lost.go has the rules and
// their limits). A request that finds its node unavailable fetches the map
// and is sent again if the map changed, unless it may have reached the
// node (see "Requests sent again").
//
// # Requests sent again
//
// A node that refuses a request (stale epoch, draining, behind the map,
// busy) changed nothing, and the request is sent again on a newer map. A
// request that met an unreachable node is sent again on a newer map only
// when it certainly never reached the node (the data client's NotSent: a
// failed dial, a connection known dead, a frame whose write failed; a
// node executes only whole frames), or when doing it twice, with other
// callers' writes between, is doing it once: reads, chunk puts, confirms,
// drop-versions, listings, usage and prefix deletes. A write of one key
// whose connection was lost after it was written (a small or manifest
// put, a conditional put, a delete, a delete by version, a get that
// deletes) is not: the node may have executed it and another writer may
// have come since, so the call fails with ErrUnavailable and an unknown
// outcome (the manifest of step 4 may be published; a delete or a get that
// deletes may have removed the value). The reasons, op by op, are at
// resendable in route.go.
//
// # Object layout
//
// A value of at most ChunkSize bytes is stored as one record under its key,
// on the node of (key, 0): a get or put is one round trip. A larger value
// is a chunked object, one version of which is written like this
// (wire/objects.go has the byte layouts):
//
//  1. The writer picks a random non-zero 64-bit version v.
//  2. Chunk i (1..n) goes to the node of (chunk key, i) under the chunk key
//     key 0x00 <v in hex> 0x00 <i>, with wire.FlagChunk|FlagLease and v,
//     several in parallel. Each node files the chunk under (job, v).
//  3. The writer confirms v on every node that took chunks (OpConfirm,
//     one request per node, in parallel): the leases end, and a node that
//     holds fewer chunks than it took fails the put. While the job's map
//     changes, a node keeps a leased chunk where its writer put it (a move
//     takes it only once confirmed) and counts at a confirm only the
//     chunks the writer put there, so each count is exact; the confirm
//     follows a newer map and waits out busy like any version request.
//  4. The writer puts the manifest (version, size, chunk size, count) under
//     the key with wire.FlagManifest and v. This is the put's one visible
//     step: the node swaps the key's record atomically, and answers with
//     the version of the manifest it replaced, if any.
//  5. The writer drops the replaced version's chunks on every node of the
//     job (OpDropVersion, one request per node).
//
// Nodes enforce what they can of this against a client holding the job's
// token but not using the SDK: a chunk key is written once (a second put of
// it answers "exists"), keys with 0x00 are chunk keys only, and a manifest
// put must carry a whole manifest of its version and object size, with
// chunks no larger than a frame. A reader allocates for a manifest of more
// than 256 MiB only when the job's nodes hold at least that many bytes.
// Within its own job such a client can still delete or drop what it likes;
// it cannot touch another job's keys.
//
// Invariants:
//
//   - Chunks are immutable: two writers, or two puts of one writer, never
//     share a chunk name, so a chunk never changes under a reader.
//   - A manifest's chunks are confirmed before it is published and dropped
//     only after it has been replaced or deleted: a reader that finds a
//     manifest finds its chunks, unless the version has been replaced
//     since; then a chunk answers "not found" and the get starts over with
//     the key's new value. A get thus returns one whole version (the one
//     whose manifest it read last) or an error; never a mix, never a wrong
//     length. The last manifest put to complete wins, whole.
//   - A small put, a delete and a delete-after-read replace or remove the
//     key's record atomically and hand back the version of a manifest they
//     replaced, whose chunks the caller then drops (step 5). Recursive
//     deletes (RemoveAll) remove records page by page on every node and
//     drop the chunks of the manifests each page removed. A node names
//     those versions again in every later prefix delete of the job until
//     their drop reaches it (dataplane/removed.go), so when a page's reply
//     is lost after the node removed it, the pass sent again, or the
//     caller's retry, drops its chunks all the same.
//   - A put that fails before step 4 drops its chunks (step 5 for its own
//     version; a node then refuses late chunks of that version for a
//     lease, so the drop is final); one whose writer died leaves leased chunks that each node
//     deletes once its chunk lease (dataplane.DefaultChunkLease, 60 s)
//     passes without a chunk put or a confirm; everything goes at job end.
//     Once step 3 has begun, steps 4 and 5 run on a context of their own
//     (up to 10 s), so a caller's cancellation cannot strand a version
//     half-published.
//   - Delete-after-read deletes only the version it read, and only after the
//     whole value was read (and, for files, written to a temporary file): a
//     failed read deletes nothing, and a value written meanwhile stays. It
//     hands the value out only if its own delete removed that version, so
//     of readers racing on one value exactly one gets it; the others answer
//     "not found" (or a conflict, for a value replaced meanwhile: Get then
//     reads the key again). A read that fails or is cancelled after its
//     delete was sent may have taken the value with it, as a one-record
//     value's read-and-delete at its node may.
//
// What is not reclaimed until the job ends: the chunks of a writer killed
// between steps 3 and 4 (one round trip), the replaced version's chunks
// when it is killed between steps 4 and 5 (one more; a hostile trial that
// killed writers overwriting one 3 MiB key in a loop leaked a whole
// replaced object in 7-10 % of its kills) or on a node unreachable at step
// 5, and, when the reply to step 4 is lost, the
// replaced version's chunks (the manifest may or may not have been
// swapped, and which version it replaced is unknown, so nothing is
// dropped) and the put's own chunks if its manifest was not stored; so,
// when the reply to a delete of one key, to a delete-after-read's delete
// or to a small put over a chunked object is lost, the removed or
// replaced version's chunks; while a key's owner changes, when a
// delete removed a chunked version at the old owner and the live owner
// then failed without saying what it holds (refused as stale, a stat
// that fails too), that version's chunks (kept rather than risk the live
// owner's copy of the same version: drain.go, liveMayHold) until a later
// put, delete or consuming get of the key through the same Job (the
// call's own last attempt, or the caller's next call) finds that version
// at neither of the key's owners (undropped.go); and
// the chunks, on the other nodes, of a value whose manifest went with a
// node that restarted or was lost (the key answers lost, or not found,
// and no call names that version again: a hostile trial that restarted a
// node during map changes left 13-36 such chunks). Of a value put with
// Persist, those chunks outlive the job until the
// controller's sweep at its end drops every version no manifest names
// (controller/sweep.go). Step
// 4 is then not sent again: a second copy could republish the version
// over another writer's, whose put had dropped its chunks, or be refused
// while the first copy stands. Keys may not contain the byte 0x00, which is
// reserved for chunk names; listings hide chunk keys and give a chunked
// object's size.
//
// # Directories
//
// Names are paths with '/' separators. CreateDir stores an empty marker
// key "dir/"; CountFiles counts the direct children of a directory across
// every node of the job; Delete of a name is recursive, as in Pocket.
package pocket
