package status

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Label names. "job" is what the brief asked for; note that Prometheus
// renames a scraped "job" label to "exported_job" unless the scrape config
// sets honor_labels: true.
const (
	lJob    = "ferry_job"
	lShard  = "shard"
	lWriter = "writer"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	// Job.
	dUp           = desc("ferry_up", "1 while the job is ready (as /readyz): not failed, and no source link or target connection down longer than 10 s.", lJob)
	dDropped      = desc("ferry_dropped_total", "Writes the target does not hold, by reason (skipped: refused by the target under on_error = skip).", lJob, "reason")
	dSrcConnected = desc("ferry_source_connected", "1 while the link to the source shard is up.", lJob, lShard)
	dSrcDown      = desc("ferry_source_disconnected_seconds", "How long the link to the source shard has been down (0 while up).", lJob, lShard)
	dWriterDown   = desc("ferry_writer_disconnected_seconds", "How long the writer's target has been unreachable (0 while connected).", lJob, lWriter)
	dJobInfo      = desc("ferry_job_info", "Always 1; the job's mode as a label.", lJob, "mode")
	dPhase        = desc("ferry_phase", "1 for the job's current phase, 0 for the other known phases.", lJob, "phase")
	dStarted      = desc("ferry_job_start_time_seconds", "When the job started, in Unix seconds.", lJob)
	dLeaseEpoch   = desc("ferry_lease_epoch", "The epoch of the job's lease on the target that this process holds (grows with each new owner); its host and pid as labels.", lJob, "host", "pid")
	dLeaseRenewed = desc("ferry_lease_renewed_time_seconds", "When this process last renewed the job's lease on the target, in Unix seconds.", lJob)
	dKeys         = desc("ferry_keys_written_total", "Snapshot keys written to the target.", lJob)
	dKeysExpired  = desc("ferry_keys_expired_total", "Snapshot keys skipped because they had already expired.", lJob)
	dKeysEmpty    = desc("ferry_keys_empty_total", "Snapshot keys skipped because they are empty collections (Redis skips them when loading).", lJob)
	dKeysSwept    = desc("ferry_keys_swept_total", "Stale keys deleted from the target after a full resync.", lJob)
	dCommands     = desc("ferry_commands_applied_total", "Replication stream commands applied to the target.", lJob)
	dReconnects   = desc("ferry_reconnects_total", "Reconnections, by connection (conn=source|writer).", lJob, "conn", lShard, lWriter)
	dSourceInfo   = desc("ferry_source_info", "Always 1; a source shard's address and replication ID as labels.", lJob, lShard, "addr", "replid")
	dSourcePhase  = desc("ferry_source_phase", "1 for a source shard's current phase, 0 for the other known phases.", lJob, lShard, "phase")
	dRecvOffset   = desc("ferry_source_received_offset_bytes", "Replication offset of the last byte received from the source.", lJob, lShard)
	dApplOffset   = desc("ferry_source_applied_offset_bytes", "Replication offset of the last source byte the target acknowledged.", lJob, lShard)
	dLagBytes     = desc("ferry_lag_bytes", "Source bytes received and not yet applied to the target.", lJob, lShard)
	dLagSeconds   = desc("ferry_lag_seconds", "How long the oldest source byte not yet applied has been waiting.", lJob, lShard)
	dRDB          = desc("ferry_rdb_bytes", "Snapshot (RDB) bytes: kind=total (absent while unknown), received, applied.", lJob, lShard, "kind")
	dFullSyncs    = desc("ferry_full_syncs_total", "Full resynchronisations with the source.", lJob, lShard)
	dPartialSyncs = desc("ferry_partial_syncs_total", "Partial resynchronisations (PSYNC +CONTINUE) with the source.", lJob, lShard)
	dSpool        = desc("ferry_spool_bytes", "Bytes waiting in the spool, where=memory|disk.", lJob, lShard, "where")
	dRescans      = desc("ferry_scan_rescans_total", "Scan reader: passes over the source's keyspace after the first (notifications may have been lost).", lJob, lShard)
	dRereadQueue  = desc("ferry_scan_reread_queue_keys", "Scan reader: changed keys waiting to be read again.", lJob, lShard)
	dScanKeys     = desc("ferry_scan_keys", "Scan reader: keys read by the pass under way (kind=read) and the source's keys when it began (kind=total).", lJob, lShard, "kind")
	dWriterInfo   = desc("ferry_writer_info", "Always 1; a writer's target address as a label.", lJob, lWriter, "addr")
	dConnected    = desc("ferry_writer_connected", "1 while the writer is connected to its target.", lJob, lWriter)
	dBatches      = desc("ferry_writer_batches_total", "Batches the target acknowledged.", lJob, lWriter)
	dOps          = desc("ferry_writer_ops_total", "Commands the target acknowledged.", lJob, lWriter)
	dBytes        = desc("ferry_writer_bytes_total", "Bytes of commands the target acknowledged.", lJob, lWriter)
	dSkipped      = desc("ferry_writer_skipped_total", "Commands the target refused and that were skipped.", lJob, lWriter)
	dPings        = desc("ferry_writer_pings_total", "Keepalive PINGs sent.", lJob, lWriter)
	dInflight     = desc("ferry_writer_inflight_bytes", "Bytes sent and not yet acknowledged.", lJob, lWriter)
	dQueued       = desc("ferry_writer_queued_bytes", "Bytes waiting to be sent.", lJob, lWriter)
	dConnAge      = desc("ferry_writer_conn_age_seconds", "Age of the writer's current connection (0 while disconnected).", lJob, lWriter)
	dKeepalive    = desc("ferry_writer_keepalive_interval_seconds", "Idle time after which the keepalive PINGs the target.", lJob, lWriter)
	dWriterOffset = desc("ferry_writer_applied_offset_bytes", "Source offset recorded in the target's fence marker.", lJob, lWriter)
)

var allDescs = []*prometheus.Desc{
	dUp, dDropped, dSrcConnected, dSrcDown, dWriterDown, dJobInfo, dPhase, dStarted, dLeaseEpoch, dLeaseRenewed, dKeys, dKeysExpired, dKeysEmpty, dKeysSwept, dCommands, dReconnects,
	dSourceInfo, dSourcePhase, dRecvOffset, dApplOffset, dLagBytes, dLagSeconds, dRDB,
	dFullSyncs, dPartialSyncs, dSpool, dRescans, dRereadQueue, dScanKeys,
	dWriterInfo, dConnected, dBatches, dOps, dBytes, dSkipped, dPings, dInflight, dQueued,
	dConnAge, dKeepalive, dWriterOffset,
}

// collector reads the Sources on each scrape; nothing runs in between.
type collector struct{ s *Server }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, j := range c.s.jobs() {
		collectJob(ch, j)
	}
}

func collectJob(ch chan<- prometheus.Metric, j Job) {
	counter := func(d *prometheus.Desc, v float64, lv ...string) { emit(ch, d, prometheus.CounterValue, v, lv...) }
	gauge := func(d *prometheus.Desc, v float64, lv ...string) { emit(ch, d, prometheus.GaugeValue, v, lv...) }
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	phases := func(d *prometheus.Desc, cur Phase, lv ...string) {
		known := false
		for _, p := range Phases {
			known = known || p == cur
			gauge(d, b2f(p == cur), append(lv, string(p))...)
		}
		if !known && cur != "" {
			gauge(d, 1, append(lv, string(cur))...)
		}
	}

	n := j.Name
	gauge(dUp, b2f(len(j.NotReady()) == 0), n)
	for reason, v := range j.Dropped {
		counter(dDropped, float64(v), n, reason)
	}
	gauge(dJobInfo, 1, n, j.Mode)
	phases(dPhase, j.Phase, n)
	if !j.StartedAt.IsZero() {
		gauge(dStarted, float64(j.StartedAt.UnixNano())/1e9, n)
	}
	if l := j.Lease; l != nil {
		gauge(dLeaseEpoch, float64(l.Epoch), n, l.Host, strconv.Itoa(l.PID))
		gauge(dLeaseRenewed, float64(l.RenewedAt.UnixNano())/1e9, n)
	}
	counter(dKeys, float64(j.KeysWritten), n)
	counter(dKeysExpired, float64(j.KeysExpired), n)
	counter(dKeysEmpty, float64(j.KeysEmpty), n)
	counter(dKeysSwept, float64(j.KeysSwept), n)
	counter(dCommands, float64(j.CommandsApplied), n)

	for _, s := range j.Shards {
		sh := s.Name
		gauge(dSourceInfo, 1, n, sh, s.Addr, s.ReplID)
		if s.Phase != "" {
			phases(dSourcePhase, s.Phase, n, sh)
		}
		gauge(dRecvOffset, float64(s.ReceivedOffset), n, sh)
		gauge(dApplOffset, float64(s.AppliedOffset), n, sh)
		gauge(dLagBytes, float64(s.LagBytes), n, sh)
		gauge(dLagSeconds, s.LagSeconds, n, sh)
		if s.RDBBytesTotal >= 0 {
			gauge(dRDB, float64(s.RDBBytesTotal), n, sh, "total")
		}
		gauge(dRDB, float64(s.RDBBytesReceived), n, sh, "received")
		gauge(dRDB, float64(s.RDBBytesApplied), n, sh, "applied")
		counter(dFullSyncs, float64(s.FullSyncs), n, sh)
		counter(dPartialSyncs, float64(s.PartialSyncs), n, sh)
		counter(dReconnects, float64(s.Reconnects), n, "source", sh, "")
		gauge(dSpool, float64(s.SpoolMemoryBytes), n, sh, "memory")
		gauge(dSpool, float64(s.SpoolDiskBytes), n, sh, "disk")
		gauge(dSrcConnected, b2f(s.DisconnectedSeconds == 0 && s.Phase != "connecting"), n, sh)
		gauge(dSrcDown, s.DisconnectedSeconds, n, sh)
		if s.Reader == "scan" {
			counter(dRescans, float64(s.Rescans), n, sh)
			gauge(dRereadQueue, float64(s.RereadQueue), n, sh)
			gauge(dScanKeys, float64(s.ScanKeys), n, sh, "read")
			gauge(dScanKeys, float64(s.ScanKeysTotal), n, sh, "total")
		}
	}

	for _, w := range j.Writers {
		wr := w.Name
		gauge(dWriterInfo, 1, n, wr, w.Addr)
		gauge(dConnected, b2f(w.Connected), n, wr)
		gauge(dWriterDown, w.DisconnectedSeconds, n, wr)
		counter(dReconnects, float64(w.Reconnects), n, "writer", "", wr)
		counter(dBatches, float64(w.Batches), n, wr)
		counter(dOps, float64(w.Ops), n, wr)
		counter(dBytes, float64(w.Bytes), n, wr)
		counter(dSkipped, float64(w.Skipped), n, wr)
		counter(dPings, float64(w.Pings), n, wr)
		gauge(dInflight, float64(w.InflightBytes), n, wr)
		gauge(dQueued, float64(w.QueuedBytes), n, wr)
		gauge(dConnAge, w.ConnAgeSeconds, n, wr)
		if w.KeepaliveIntervalSeconds > 0 {
			gauge(dKeepalive, w.KeepaliveIntervalSeconds, n, wr)
		}
		gauge(dWriterOffset, float64(w.AppliedOffset), n, wr)
	}
}

// emit sends one metric; a value that cannot be a metric (NaN) or labels
// that do not fit are left out rather than failing the scrape.
func emit(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, lv ...string) {
	if math.IsNaN(v) {
		return
	}
	m, err := prometheus.NewConstMetric(d, t, v, lv...)
	if err != nil {
		return
	}
	ch <- m
}
