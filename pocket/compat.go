package pocket

import (
	"context"
	"errors"
	"fmt"
	"github.com/pocketstore/pocket/wire"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pocketstore/pocket/internal/token"
)

// The Pocket-compatible layer: pocket.py's calls with their names,
// arguments and return conventions (0 on success, -1 on error; counts or
// -1). Where Pocket was broken we do it right:
//
//   - DeregisterJob really deletes the job's data (Pocket's path bug meant
//     it never did), keeping values put with PERSIST_AFTER_JOB.
//   - Put over an existing name replaces it (Pocket returned an error).
//
// Pocket named a value /jobid/name, so "x" and "/x" were one file: the
// Handle's calls drop a name's leading slashes (compatName), as the
// Python layer does (python/pocket/compat.py), and a value put through
// one layer is found by the same name through the other. The Go API, the
// CLI and Python's Job keep a key as it is given.
// The controller is found as Pocket's lambdas found it, from the
// environment: POCKET_CONTROLLER=host:port. A job registered in this
// process remembers its token; a job registered elsewhere takes it from
// POCKET_TOKEN (hex), as the launcher of the lambdas passes it on. After
// DeregisterJob the job's persisted values stay readable and deletable
// (read-only) in that process, and elsewhere with POCKET_CREDENTIAL set to
// the job's Credential (see persist.go).

// compatJobs remembers tokens of jobs registered through this layer, and
// compatCreds the credentials of jobs deregistered through it, whose
// persisted values stay readable (persist.go).
var compatJobs, compatCreds sync.Map // job id -> []byte token; job id -> credential

// maxCompatCreds bounds the credentials compatCreds keeps, the newest
// (as the controller keeps at most 4096 ended jobs' final maps): a process
// deregistering jobs for ever kept every one, about 450 bytes a job. An
// older job's persisted values stay readable with POCKET_CREDENTIAL.
var maxCompatCreds = 4096

var (
	credsMu    sync.Mutex
	credsOrder []string // compatCreds' ids, oldest first
)

// keepCredential stores a deregistered job's credential, forgetting the
// oldest past maxCompatCreds.
func keepCredential(jobid, cred string) {
	credsMu.Lock()
	defer credsMu.Unlock()
	if _, had := compatCreds.Swap(jobid, cred); !had {
		credsOrder = append(credsOrder, jobid)
	}
	for len(credsOrder) > maxCompatCreds {
		compatCreds.Delete(credsOrder[0])
		credsOrder[0] = ""
		credsOrder = credsOrder[1:]
	}
}

func controllerAddr() (string, error) {
	if a := os.Getenv("POCKET_CONTROLLER"); a != "" {
		return a, nil
	}
	return "", errors.New("pocket: POCKET_CONTROLLER is not set")
}

// RegisterJob registers a job (pocket.register_job) and returns its id,
// "jobname-<int>". Zero hints mean "not given".
func RegisterJob(jobname string, numLambdas int, capacityGB, peakMbps int64, latencySensitive bool) (string, error) {
	if capacityGB < 0 || capacityGB > wire.MaxJobBytes>>30 {
		// capacityGB << 30 would wrap (to a negative or a small figure).
		return "", wire.Errorf(wire.CodeMalformed, "capacity hint %d GB: want 0 (not given) to %d", capacityGB, int64(wire.MaxJobBytes>>30))
	}
	addr, err := controllerAddr()
	if err != nil {
		return "", err
	}
	s, err := Dial(context.Background(), addr, Config{})
	if err != nil {
		return "", err
	}
	defer s.Close()
	j, err := s.RegisterJob(context.Background(), jobname, Hints{
		Lambdas: numLambdas, CapacityBytes: capacityGB << 30, PeakMbps: peakMbps, LatencySensitive: latencySensitive,
	})
	if err != nil {
		return "", err
	}
	compatJobs.Store(j.ID(), j.Token())
	return j.ID(), nil
}

// DeregisterJob releases a job and deletes its data (pocket.deregister_job);
// 0 on success, -1 on error. The job is deregistered, and the process
// reads its persisted values as an ended job's, also when the call
// returns -1 with a *DropError behind it (Handle.Err: nodes that did not
// drop its data); a map's dead nodes are not an error (Job.Deregister).
func DeregisterJob(jobid string) int {
	h, err := Connect("", 0)
	if err != nil {
		return -1
	}
	defer h.Close()
	j, err := h.job(jobid)
	if err != nil {
		return -1
	}
	err = j.Deregister(context.Background())
	if _, ended := j.Deregistration(); ended {
		compatJobs.Delete(jobid)
		keepCredential(jobid, j.Credential()) // with the map the deregistration fetched
	}
	return h.status(err)
}

// credentialOf returns the credential of a deregistered job: kept by the
// process that deregistered it, or POCKET_CREDENTIAL when it names jobid
// ("" when neither). A POCKET_CREDENTIAL that is not a credential at all
// is an error, as a POCKET_TOKEN that is not hex: ignored, it would leave
// the caller with a misleading "no token".
func credentialOf(jobid string) (string, error) {
	if c, ok := compatCreds.Load(jobid); ok {
		return c.(string), nil
	}
	env := os.Getenv("POCKET_CREDENTIAL")
	if env == "" {
		return "", nil
	}
	c, err := decodeCredential(env)
	if err != nil {
		return "", fmt.Errorf("pocket: POCKET_CREDENTIAL is not a job credential: %w", err)
	}
	if c.Job != jobid {
		return "", nil
	}
	return env, nil
}

// Handle is the connection pocket.connect returns.
type Handle struct {
	s    *Store
	mu   sync.Mutex
	jobs map[string]*Job
	err  atomic.Pointer[error] // the last call's error; nil: none
}

// Connect opens a handle to the controller at hostname:port
// (pocket.connect); an empty hostname means POCKET_CONTROLLER.
func Connect(hostname string, port int) (*Handle, error) {
	addr := net.JoinHostPort(hostname, strconv.Itoa(port))
	if hostname == "" {
		a, err := controllerAddr()
		if err != nil {
			return nil, err
		}
		addr = a
	}
	s, err := Dial(context.Background(), addr, Config{})
	if err != nil {
		return nil, err
	}
	return &Handle{s: s, jobs: map[string]*Job{}}, nil
}

// Err is the error behind the last -1 returned by the handle (of any
// goroutine's calls, when several share it).
func (h *Handle) Err() error {
	if p := h.err.Load(); p != nil {
		return *p
	}
	return nil
}

// job opens (once) a job by id with its remembered or exported token.
func (h *Handle) job(jobid string) (*Job, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cred, err := credentialOf(jobid)
	if err != nil {
		return nil, err
	}
	if j := h.jobs[jobid]; j != nil {
		if cred != "" {
			j.retired.Store(true) // deregistered since: reads its persisted values (holdsNone)
		}
		return j, nil
	}
	if cred != "" {
		j, err := h.s.OpenCredential(cred)
		if err == nil {
			h.jobs[jobid] = j
		}
		return j, err
	}
	tok, ok := compatJobs.Load(jobid)
	var t []byte
	if ok {
		t = tok.([]byte)
	} else if env := os.Getenv("POCKET_TOKEN"); env != "" {
		var err error
		if t, err = token.Parse(env); err != nil {
			return nil, fmt.Errorf("pocket: POCKET_TOKEN: %w", err)
		}
	}
	j, err := h.s.OpenJob(context.Background(), jobid, t)
	if err != nil {
		return nil, err
	}
	h.jobs[jobid] = j
	return j, nil
}

// status turns an error into Pocket's 0 / -1, keeping the error.
func (h *Handle) status(err error) int {
	h.err.Store(&err)
	if err != nil {
		return -1
	}
	return 0
}

// compatName is a name of Pocket's calls as a key: without its leading
// slashes (see the top of the file).
func compatName(name string) string { return strings.TrimLeft(name, "/") }

func (h *Handle) run(jobid string, f func(*Job) error) int {
	// A job id's slashes go too, as Pocket's /jobid/name and the Python
	// layer have them (a hostile re-check: "/sort-1" answered bad token
	// here, the value in Python).
	j, err := h.job(strings.Trim(jobid, "/"))
	if err != nil {
		return h.status(err)
	}
	return h.status(f(j))
}

// Put uploads a local file to dst_filename (pocket.put).
func (h *Handle) Put(srcFilename, dstFilename, jobid string, persistAfterJob bool) int {
	return h.run(jobid, func(j *Job) error {
		return j.PutFile(context.Background(), srcFilename, compatName(dstFilename), persistOpt(persistAfterJob)...)
	})
}

// PutBuffer stores the first length bytes of src (pocket.put_buffer).
func (h *Handle) PutBuffer(src []byte, length int, dstFilename, jobid string, persistAfterJob bool) int {
	if length < 0 || length > len(src) {
		return h.status(fmt.Errorf("pocket: put_buffer: length %d outside the %d-byte buffer", length, len(src)))
	}
	return h.run(jobid, func(j *Job) error {
		return j.Put(context.Background(), compatName(dstFilename), src[:length], persistOpt(persistAfterJob)...)
	})
}

// Get downloads src_filename into a local file (pocket.get).
func (h *Handle) Get(srcFilename, dstFilename, jobid string, deleteAfterRead bool) int {
	return h.run(jobid, func(j *Job) error {
		return j.GetFile(context.Background(), compatName(srcFilename), dstFilename, deleteOpt(deleteAfterRead)...)
	})
}

// GetBuffer reads a value into dst[:length] (pocket.get_buffer); as in
// Pocket, the caller must know the length: a value of another size is an
// error, and then delete-after-read deletes nothing.
func (h *Handle) GetBuffer(srcFilename string, dst []byte, length int, jobid string, deleteAfterRead bool) int {
	if length < 0 || length > len(dst) {
		return h.status(fmt.Errorf("pocket: get_buffer: length %d outside the %d-byte buffer", length, len(dst)))
	}
	srcFilename = compatName(srcFilename)
	return h.run(jobid, func(j *Job) error {
		ctx := context.Background()
		if err := checkName(srcFilename); err != nil {
			return err
		}
		b, ver, err := j.getInto(ctx, srcFilename, dst[:0:length], wire.FlagVersion)
		if err != nil {
			return j.wrap("get_buffer", srcFilename, err)
		}
		if len(b) != length {
			return fmt.Errorf("pocket: get_buffer %q: value is %d bytes, want %d", srcFilename, len(b), length)
		}
		if length > 0 && &b[0] != &dst[0] {
			copy(dst, b)
		}
		if deleteAfterRead {
			if err := j.deleteVersion(ctx, srcFilename, ver); err != nil {
				return j.wrap("get_buffer", srcFilename, fmt.Errorf("delete-after-read: %w", err))
			}
		}
		return nil
	})
}

// Lookup returns 0 if name exists as a value or a directory (pocket.lookup).
func (h *Handle) Lookup(name, jobid string) int {
	name = compatName(name)
	return h.run(jobid, func(j *Job) error {
		ctx := context.Background()
		ok, err := j.Exists(ctx, name)
		if err == nil && !ok {
			ok, err = j.Exists(ctx, dirPrefix(name))
		}
		if err == nil && !ok {
			err = fmt.Errorf("pocket: lookup %q: %w", name, ErrNotFound)
		}
		return err
	})
}

// Delete removes name recursively (pocket.delete). A name that is empty or
// only slashes, which would name the whole job, fails (-1: RemoveAll's
// ErrBadName); Job.DeleteAll deletes every value.
func (h *Handle) Delete(name, jobid string) int {
	return h.run(jobid, func(j *Job) error { return j.RemoveAll(context.Background(), compatName(name)) })
}

// CreateDir makes a directory (pocket.create_dir).
func (h *Handle) CreateDir(name, jobid string) int {
	return h.run(jobid, func(j *Job) error { return j.CreateDir(context.Background(), compatName(name)) })
}

// CountFiles returns the number of direct children of dirname, or -1
// (pocket.count_files).
func (h *Handle) CountFiles(dirname, jobid string) int {
	n := -1
	st := h.run(jobid, func(j *Job) error {
		c, err := j.CountFiles(context.Background(), compatName(dirname))
		n = c
		return err
	})
	if st != 0 {
		return -1
	}
	return n
}

// Close closes the handle (pocket.close).
func (h *Handle) Close() int { return h.status(h.s.Close()) }

func persistOpt(on bool) []PutOption {
	if on {
		return []PutOption{Persist()}
	}
	return nil
}

func deleteOpt(on bool) []GetOption {
	if on {
		return []GetOption{DeleteAfterRead()}
	}
	return nil
}
