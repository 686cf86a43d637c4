package metrics

// Metric names: the one list of what the servers export, used by the
// collectors, the Grafana dashboard's test (deploy/grafana) and the
// README. They follow the Prometheus conventions: the pocket_ prefix, base
// units (bytes, seconds), _total on counters. Labels are given after each.
const (
	// Storage node: its requests and data (package dataplane).

	// NodeRequests counts requests answered, by op (wire.Op's name) and
	// result ("ok" or the wire error code's name, e.g. "not_found").
	NodeRequests = "pocket_node_requests_total"
	// NodeRequestDuration is the time from the read that completed a
	// request's header to its reply having been queued (not yet written to
	// the socket), by op (histogram). Successful replies queued while the
	// node handles that read are counted and timed together when it is done
	// with the whole read: they record the same latency. Error replies, and
	// replies queued later (from a worker, a streamed get, a put's later
	// payload), are timed as they are queued.
	NodeRequestDuration = "pocket_node_request_duration_seconds"
	// NodeReceivedBytes and NodeSentBytes count value bytes taken by puts
	// and sent by gets.
	NodeReceivedBytes = "pocket_node_received_bytes_total"
	NodeSentBytes     = "pocket_node_sent_bytes_total"
	// NodeConnections is the number of open client connections.
	NodeConnections = "pocket_node_connections"
	// NodeConnectionsAccepted and NodeConnectionsRefused count accepted
	// connections and those closed at once over a limit.
	NodeConnectionsAccepted = "pocket_node_connections_accepted_total"
	NodeConnectionsRefused  = "pocket_node_connections_refused_total"
	// NodeConnectionsEvicted counts connections reset to give their slot
	// to a new one at the node's connection limit: ones that had shown
	// no valid token or order proof, or only past their job's share of
	// the slots; NodeConnectionsOverJobShare counts connections whose
	// token was valid but whose job had half the slots proven already
	// (netio.Config.MaxProvenPerOwner), once each.
	NodeConnectionsEvicted      = "pocket_node_connections_evicted_total"
	NodeConnectionsOverJobShare = "pocket_node_connections_over_job_share_total"
	// NodeConnectionsFairShareEvicted counts those of
	// NodeConnectionsEvicted that had shown a valid token for an owner
	// holding more than its fair share of the slots (netio's
	// fairshare.go).
	NodeConnectionsFairShareEvicted = "pocket_node_connections_fair_share_evicted_total"
	// NodeConnectionsPromoted counts reserve connections that showed a
	// valid token for an owner below its fair share and took an ordinary
	// slot (netio's Conn.Promote).
	NodeConnectionsPromoted = "pocket_node_connections_promoted_total"
	// NodeUnreadReplyBytes is the reply bytes queued on the node's
	// connections, unsent (their clients have not taken them);
	// NodeConnectionsPaused counts the times a connection stopped being
	// read over such replies, by limit ("MaxOutbound": its own,
	// "MaxOutboundTotal": all connections', --max-unread).
	NodeUnreadReplyBytes = "pocket_node_unread_reply_bytes"
	// NodeUnreadReplyLimit is the node's bound on them (--max-unread; 0:
	// none).
	NodeUnreadReplyLimit  = "pocket_node_unread_reply_limit_bytes"
	NodeConnectionsPaused = "pocket_node_connections_paused_total"
	// NodeTierUsed and NodeTierCapacity are each tier's bytes, by tier
	// ("dram", "nvme").
	NodeTierUsed     = "pocket_node_tier_used_bytes"
	NodeTierCapacity = "pocket_node_tier_capacity_bytes"
	// NodeTierValues is the number of values stored per tier.
	NodeTierValues = "pocket_node_tier_values"
	// NodeDRAMCompactedValues and NodeDRAMCompactedPages count the values
	// the DRAM tier's compaction moved and the slab pages it gave back.
	NodeDRAMCompactedValues = "pocket_node_dram_compacted_values_total"
	NodeDRAMCompactedPages  = "pocket_node_dram_compacted_pages_total"
	// NodeTierDeviceErrors counts the transfers a tier's device failed,
	// by tier and op ("read", "write").
	NodeTierDeviceErrors = "pocket_node_tier_device_errors_total"

	// Host figures of a node (package telemetry, from procfs and eBPF).

	NetReceiveBytes        = "pocket_net_receive_bytes_total"       // by device
	NetTransmitBytes       = "pocket_net_transmit_bytes_total"      // by device
	NetReceiveBytesPerSec  = "pocket_net_receive_bytes_per_second"  // by device
	NetTransmitBytesPerSec = "pocket_net_transmit_bytes_per_second" // by device
	DiskReadBytes          = "pocket_disk_read_bytes_total"         // by device
	DiskWrittenBytes       = "pocket_disk_written_bytes_total"      // by device
	DiskReads              = "pocket_disk_reads_completed_total"    // by device
	DiskWrites             = "pocket_disk_writes_completed_total"   // by device
	DiskReadBytesPerSec    = "pocket_disk_read_bytes_per_second"    // by device
	DiskWriteBytesPerSec   = "pocket_disk_write_bytes_per_second"   // by device
	DiskReadIOPS           = "pocket_disk_read_iops"                // by device
	DiskWriteIOPS          = "pocket_disk_write_iops"               // by device
	DiskBusyPercent        = "pocket_disk_busy_percent"             // by device
	CPUBusyPercent         = "pocket_cpu_busy_percent"              // by cpu
	// BlockProbeUp is 1 while the eBPF block probe runs, 0 when it was
	// asked for and the kernel refused it.
	BlockProbeUp = "pocket_block_probe_up"
	// BlockIODuration is block request latency from issue to completion
	// as the kernel sees it, by device and op (histogram).
	BlockIODuration = "pocket_block_io_duration_seconds"

	// Controller (package controller).

	ControllerNodes = "pocket_controller_nodes" // by state: active, draining, dead
	ControllerJobs  = "pocket_controller_jobs"  // by tier
	// ControllerJobRegistrations counts registrations accepted.
	ControllerJobRegistrations = "pocket_controller_job_registrations_total"
	// ControllerRegistrationsRefused counts registrations refused, by
	// reason (the limit's name, e.g. "MaxJobs", or the error code's).
	ControllerRegistrationsRefused = "pocket_controller_job_registrations_refused_total"
	// ControllerOrphansDropped counts the drop orders the controller sent
	// for data a node held of a job it does not know (an orphan, after
	// Config.OrphanGrace), and ControllerOrphanBytesDropped the bytes those
	// orders dropped, as the nodes reported them.
	ControllerOrphansDropped     = "pocket_controller_orphans_dropped_total"
	ControllerOrphanBytesDropped = "pocket_controller_orphan_bytes_dropped_total"
	// ControllerOrphansHeld is the number of (node, job) orphans the nodes
	// report holding now, waiting out the grace.
	ControllerOrphansHeld = "pocket_controller_orphans_held"
	// ControllerSweptVersions counts the object versions of ended jobs
	// whose chunks no manifest named that the controller had their nodes
	// drop (controller/sweep.go), and ControllerSweptBytes their bytes.
	ControllerSweptVersions = "pocket_controller_swept_versions_total"
	ControllerSweptBytes    = "pocket_controller_swept_bytes_total"
	NodeCPUUtilization      = "pocket_node_cpu_utilization"      // by node
	NodeNetUtilization      = "pocket_node_net_utilization"      // by node, source
	NodeCapacityUtilization = "pocket_node_capacity_utilization" // by node, tier
	NodeRxMbps              = "pocket_node_rx_mbps"              // by node
	NodeTxMbps              = "pocket_node_tx_mbps"              // by node
	// AutoscalerDecisions counts the autoscaler's decisions by decision:
	// add, remove, or hold (a change was needed and held back).
	AutoscalerDecisions   = "pocket_autoscaler_decisions_total"
	AutoscalerEvaluations = "pocket_autoscaler_evaluations_total"
	AutoscalerUtilization = "pocket_autoscaler_utilization" // by dim
	AutoscalerStarting    = "pocket_autoscaler_starting_nodes"
)

// Names lists every metric name above, for checks that a dashboard or a
// document uses only exported names.
var Names = []string{
	NodeRequests, NodeRequestDuration, NodeReceivedBytes, NodeSentBytes, NodeConnections,
	NodeConnectionsAccepted, NodeConnectionsRefused, NodeConnectionsEvicted, NodeConnectionsOverJobShare,
	NodeConnectionsFairShareEvicted, NodeConnectionsPromoted,
	NodeUnreadReplyBytes, NodeUnreadReplyLimit, NodeConnectionsPaused, NodeTierUsed, NodeTierCapacity, NodeTierValues,
	NodeDRAMCompactedValues, NodeDRAMCompactedPages, NodeTierDeviceErrors,
	NetReceiveBytes, NetTransmitBytes, NetReceiveBytesPerSec, NetTransmitBytesPerSec,
	DiskReadBytes, DiskWrittenBytes, DiskReads, DiskWrites, DiskReadBytesPerSec, DiskWriteBytesPerSec,
	DiskReadIOPS, DiskWriteIOPS, DiskBusyPercent, CPUBusyPercent, BlockProbeUp, BlockIODuration,
	ControllerNodes, ControllerJobs, ControllerJobRegistrations, ControllerRegistrationsRefused,
	ControllerOrphansDropped, ControllerOrphanBytesDropped, ControllerOrphansHeld, ControllerSweptVersions, ControllerSweptBytes,
	NodeCPUUtilization, NodeNetUtilization, NodeCapacityUtilization, NodeRxMbps, NodeTxMbps,
	AutoscalerDecisions, AutoscalerEvaluations, AutoscalerUtilization, AutoscalerStarting,
}
