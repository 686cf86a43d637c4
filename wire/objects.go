package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
)

// Objects: the layout of a value larger than one chunk, shared by the SDK
// (package pocket) that writes and reads it and the nodes that move it.
//
// A chunked object is one version, a random non-zero uint64 its writer
// picks. Chunk i (1..n) of version v of key k is stored under
//
//	k 0x00 <v as 16 lowercase hex digits> 0x00 <i in decimal>
//
// (ChunkKey), placed as (that key, i), put with FlagChunk|FlagLease and
// Request.version v. Then the manifest is stored under k itself with
// FlagManifest, Request.version v and Request.object_size; its payload:
//
//	offset size field
//	0      4    magic "PKM2"
//	4      8    version v (little-endian)
//	12     8    object size in bytes
//	20     4    chunk size in bytes
//	24     4    chunk count n
//
// Keys never contain 0x00, so chunk keys cannot collide with user keys, and
// chunks of two versions never collide with each other: chunks are
// immutable once written.
const (
	ManifestLen   = 28
	manifestMagic = "PKM2"
)

// Manifest describes one version of a chunked object.
type Manifest struct {
	Version uint64
	Size    int64 // object bytes
	Chunk   int64 // chunk bytes; every chunk but the last is this long
	Count   int   // chunks, numbered 1..Count
}

// AppendManifest appends m's encoding to dst.
func AppendManifest(dst []byte, m Manifest) []byte {
	var b [ManifestLen]byte
	copy(b[:], manifestMagic)
	binary.LittleEndian.PutUint64(b[4:], m.Version)
	binary.LittleEndian.PutUint64(b[12:], uint64(m.Size))
	binary.LittleEndian.PutUint32(b[20:], uint32(m.Chunk))
	binary.LittleEndian.PutUint32(b[24:], uint32(m.Count))
	return append(dst, b[:]...)
}

// DecodeManifest parses a manifest, checking that it is self-consistent:
// a non-zero version, a chunk size from 1 to DefaultMaxPayload (what one
// frame carries) and count = ceil(size/chunk).
// Errors match ErrMalformed.
func DecodeManifest(b []byte) (Manifest, error) {
	if len(b) != ManifestLen || string(b[:4]) != manifestMagic {
		return Manifest{}, Errorf(CodeMalformed, "not a manifest (%d bytes)", len(b))
	}
	m := Manifest{
		Version: binary.LittleEndian.Uint64(b[4:]),
		Size:    int64(binary.LittleEndian.Uint64(b[12:])),
		Chunk:   int64(binary.LittleEndian.Uint32(b[20:])),
		Count:   int(binary.LittleEndian.Uint32(b[24:])),
	}
	if m.Version == 0 || m.Size < 0 || m.Chunk <= 0 || m.Chunk > DefaultMaxPayload || int64(m.Count) != (m.Size+m.Chunk-1)/m.Chunk {
		return Manifest{}, Errorf(CodeMalformed, "inconsistent manifest %+v", m)
	}
	return m, nil
}

// ChunkBounds returns the byte range [lo, hi) of chunk i (1..Count).
func (m Manifest) ChunkBounds(i int) (lo, hi int64) {
	lo = int64(i-1) * m.Chunk
	return lo, min(lo+m.Chunk, m.Size)
}

// AppendChunkKey appends the key of chunk i of version v of key to dst.
func AppendChunkKey(dst, key []byte, v uint64, i int) []byte {
	dst = append(append(dst, key...), 0)
	dst = fmt.Appendf(dst, "%016x", v)
	return strconv.AppendInt(append(dst, 0), int64(i), 10)
}

// ParseChunkKey splits a chunk key into its object key, version and chunk
// number; ok is false for any key that is not a well-formed chunk key.
func ParseChunkKey(k []byte) (key []byte, v uint64, i int, ok bool) {
	z := bytes.IndexByte(k, 0)
	if z < 0 || len(k) < z+1+16+2 || k[z+17] != 0 {
		return nil, 0, 0, false
	}
	for _, c := range k[z+1 : z+17] {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return nil, 0, 0, false
		}
	}
	if v == 0 {
		return nil, 0, 0, false
	}
	n, err := strconv.Atoi(string(k[z+18:]))
	if err != nil || n < 1 || k[z+18] == '0' || k[z+18] == '+' {
		return nil, 0, 0, false
	}
	return k[:z], v, n, true
}

// IsChunkKey reports whether k is an internal key (it contains 0x00):
// listings hide such keys.
func IsChunkKey(k []byte) bool { return bytes.IndexByte(k, 0) >= 0 }

// PackVersions appends vs to dst, 8 bytes each, big endian: the form of
// Request.after in OpVersions (the cursor, one version) and
// OpDropVersions (the versions to drop).
func PackVersions(dst []byte, vs ...uint64) []byte {
	for _, v := range vs {
		dst = binary.BigEndian.AppendUint64(dst, v)
	}
	return dst
}

// UnpackVersions returns the versions PackVersions packed into b; ok is
// false when b's length is not a multiple of 8 or a version is 0.
func UnpackVersions(b []byte) (vs []uint64, ok bool) {
	if len(b)%8 != 0 {
		return nil, false
	}
	vs = make([]uint64, 0, len(b)/8)
	for ; len(b) > 0; b = b[8:] {
		v := binary.BigEndian.Uint64(b)
		if v == 0 {
			return nil, false
		}
		vs = append(vs, v)
	}
	return vs, true
}
