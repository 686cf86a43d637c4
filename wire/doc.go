// Package wire defines the project's wire protocol: the frame header, the
// opcodes, the error-code registry, the limits, and the flatbuffers tables
// (wire/*.fbs, generated Go in wire/fb) that carry request and reply metadata.
//
// # Frame
//
// Every message, request or reply, data plane or control plane, is one frame:
//
//	+--------+---------------------+----------------------+
//	| header | metadata            | payload              |
//	| 24 B   | MetaLen bytes:      | PayloadLen bytes:    |
//	|        | one flatbuffer      | raw value bytes      |
//	+--------+---------------------+----------------------+
//
// Bulk bytes never pass through the flatbuffers builder: a put's value and a
// get's reply value are the payload, received straight into slab memory and
// sent with writev straight out of it.
//
// # Header
//
// All integers are little-endian. The layout and the constants below are part
// of the format and must not change without a new Version.
//
//	offset size field
//	0      2    magic       'P','K' (0x50 0x4B)
//	2      1    version     1
//	3      1    opcode      Op; a reply carries the request's opcode | 0x80
//	4      2    flags       request modifiers (Flag*); in a get reply, the value's StoredFlags
//	6      2    code        0 in requests; the Code of a reply (0: success)
//	8      8    request id  chosen by the client, echoed in the reply
//	16     4    meta len    length of the flatbuffer that follows (0: none)
//	20     4    payload len length of the raw payload after the flatbuffer
//
// Requests are pipelined: a client may send many before reading, and replies
// may come back in any order; the request id matches them.
//
// # Limits and hostile input
//
// ParseHeader checks magic, version and both lengths against Limits before the
// caller allocates or waits for anything, so a header that promises a huge
// frame is refused at once. The Go flatbuffers runtime does not verify
// untrusted buffers (its accessors index without bounds checks of their own
// and panic on garbage), so DecodeRequest and DecodeResponse first walk the
// buffer with a verifier (verify.go) that proves every offset, vtable, string
// and vector the accessors will touch lies inside it. Fuzz tests exercise
// both with arbitrary bytes.
//
// # Error codes
//
// Codes (codes.go) are one registry with stable numbers; clients turn a reply's
// code into an *Error that matches the registry's sentinels with errors.Is.
package wire
