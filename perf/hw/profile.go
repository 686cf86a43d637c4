package hw

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/pocketstore/pocket/internal/limited"
)

// ProfileVersion is the profile format this package writes and reads.
const ProfileVersion = 1

// maxProfileBytes bounds what ReadProfile accepts; a real profile is about
// a kilobyte.
const maxProfileBytes = 1 << 20

// Profile is a measured hardware profile as a node reports it to the
// controller; see the package doc for the file format.
type Profile struct {
	Version    int       `json:"version"`
	Host       string    `json:"host"`
	MeasuredAt time.Time `json:"measured_at"`
	Report     Report    `json:"report"`
}

// NewProfile wraps a report with this host's name and the current time.
func NewProfile(r Report) Profile {
	host, _ := os.Hostname()
	return Profile{Version: ProfileVersion, Host: host, MeasuredAt: time.Now().UTC().Truncate(time.Second), Report: r}
}

// WriteProfile writes p to path atomically (a temporary file renamed over
// it), so a node never reads half a profile.
func WriteProfile(path string, p Profile) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadProfile loads and checks a profile file.
func ReadProfile(path string) (Profile, error) {
	data, err := limited.ReadFile(path, maxProfileBytes)
	if err != nil {
		return Profile{}, fmt.Errorf("%w: %w", ErrBadProfile, err)
	}
	return ParseProfile(data)
}

// ErrBadProfile: a profile that is not valid JSON, has another version or
// carries a rate that is negative, infinite or NaN.
var ErrBadProfile = errors.New("hw: bad profile")

// ParseProfile decodes and checks a profile.
func ParseProfile(data []byte) (Profile, error) {
	var p Profile
	if len(data) > maxProfileBytes {
		return p, fmt.Errorf("%w: %d bytes (limit %d)", ErrBadProfile, len(data), maxProfileBytes)
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return Profile{}, fmt.Errorf("%w: %w", ErrBadProfile, err)
	}
	if p.Version != ProfileVersion {
		return Profile{}, fmt.Errorf("%w: version %d, want %d", ErrBadProfile, p.Version, ProfileVersion)
	}
	if err := p.Report.check(); err != nil {
		return Profile{}, err
	}
	return p, nil
}

func (r *Report) check() error {
	rates := []float64{r.SeqWriteMBps, r.SeqReadMBps, r.RandRead4kIOPSQD32, r.RandRead4kP50usQD1, r.DRAMCopyGBps, r.LoopbackMBps}
	for _, rr := range append(append([]RandResult(nil), r.RandRead...), r.RandWrite...) {
		if rr.Depth <= 0 {
			return fmt.Errorf("%w: queue depth %d", ErrBadProfile, rr.Depth)
		}
		rates = append(rates, rr.IOPS, rr.P50us, rr.P99us)
	}
	for _, v := range rates {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: rate %v", ErrBadProfile, v)
		}
	}
	if r.Size < 0 || r.Align < 0 {
		return fmt.Errorf("%w: size %d align %d", ErrBadProfile, r.Size, r.Align)
	}
	return nil
}
