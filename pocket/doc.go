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
// anyone where a key is.
//
// # Object layout
//
// A value of at most ChunkSize bytes is stored as-is under its key, on the
// node of (key, 0): a get is one round trip. A larger value is split into
// chunks stored under key+"\x00"+i (i = 1..n) on the nodes of (key, i),
// moved in parallel, and then a 20-byte manifest is stored under the key
// itself with wire.FlagManifest:
//
//	offset size field
//	0      4    magic "PKM1"
//	4      8    total size (little-endian)
//	12     4    chunk size
//	16     4    chunk count n
//
// Chunks are written before the manifest, so a reader never sees a
// manifest whose chunks are missing. Keys may not contain the byte 0x00,
// which is reserved for chunk names; listings hide chunk keys.
//
// # Directories
//
// Names are paths with '/' separators. CreateDir stores an empty marker
// key "dir/"; CountFiles counts the direct children of a directory across
// every node of the job; Delete of a name is recursive, as in Pocket.
package pocket
