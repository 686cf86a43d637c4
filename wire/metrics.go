package wire

// Names of the metrics a storage node sends in Heartbeat.Metrics (and the
// controller passes on in ClusterStatus), the one definition the node's
// agent, the controller and `pocket status` share. A name is part of the
// protocol: never rename one; add new names here.
const (
	// MetricDrainDone is 1 once a draining node has moved every value of
	// the jobs it holds (a full pass found nothing left), else 0. Sent
	// only while the node drains.
	MetricDrainDone = "drain_done"
	// MetricDrainLeft is the number of values a draining node still has
	// to move, as of its last pass. Sent only while the node drains,
	// after its first pass.
	MetricDrainLeft = "drain_values_left"
	// MetricDrainNoRoom is the number of values a draining node's last
	// pass could not move because their owner had no room for them
	// (CodeNoSpace). Sent only while the node drains, after its first
	// pass. A drain not ordered to lose what does not fit waits for room
	// past its deadline while it is not 0 (controller/drain.go).
	MetricDrainNoRoom = "drain_values_no_room"

	// MetricPersistedJobs is the number of ended jobs whose
	// persist-after-job values a node keeps, and MetricPersistedBytes
	// their bytes there (Heartbeat.PersistedJobs, PersistedBytes): the
	// controller adds them to the node's figures in ClusterStatus when
	// not zero. A drain of such a node waits for them unless told to
	// discard them.
	MetricPersistedJobs  = "persisted_jobs"
	MetricPersistedBytes = "persisted_bytes"

	// MetricRequestsPerSec is the node's requests per second over the
	// last heartbeat interval.
	MetricRequestsPerSec = "requests_per_sec"
	// MetricErrorsPerSec is the node's error replies per second over the
	// last heartbeat interval.
	MetricErrorsPerSec = "errors_per_sec"
	// MetricOpenConns is the number of data-plane connections open at the
	// heartbeat.
	MetricOpenConns = "open_conns"
	// MetricRSSBytes is the node process's resident set size, in bytes.
	MetricRSSBytes = "rss_bytes"

	// MetricBlockP99Prefix begins the name of a block device's p99 I/O
	// latency in microseconds over the last interval, measured by the
	// eBPF probe: MetricBlockP99Prefix + "DEV:OP" (BlockMetric builds it).
	MetricBlockP99Prefix = "blk_p99_us:"
	// MetricBlockRatePrefix begins the name of a block device's I/Os per
	// second over the last interval: MetricBlockRatePrefix + "DEV:OP".
	MetricBlockRatePrefix = "blk_per_sec:"

	// MetricDeviceErrorsPrefix begins the name of the number of transfers
	// a tier's device has failed since the node started:
	// MetricDeviceErrorsPrefix + the tier's name ("device_errors:nvme").
	// Sent once there is one.
	MetricDeviceErrorsPrefix = "device_errors:"
	// MetricDeviceFailingPrefix begins the name of a tier's failing flag:
	// MetricDeviceFailingPrefix + the tier's name ("device_failing:nvme"),
	// 1 while its device failed a transfer within the last 5 minutes
	// (dataplane.DeviceFailingFor); sent only then. The controller places
	// no job on that tier of the node meanwhile: its candidates leave it
	// out (new jobs, refills, moves off drained or dead nodes).
	MetricDeviceFailingPrefix = "device_failing:"
)

// BlockMetric returns the name of a per-device block metric: prefix (one
// of MetricBlockP99Prefix, MetricBlockRatePrefix), then the device name,
// a colon and the operation ("read", "write"), e.g.
// "blk_p99_us:nvme0n1:read".
func BlockMetric(prefix, device, op string) string {
	return prefix + device + ":" + op
}
