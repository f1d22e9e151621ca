package status

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo describes the running binary.
type BuildInfo struct {
	Version   string // release version, module version, or "dev"
	Revision  string // VCS revision; "" when unknown
	Modified  bool   // built from a checkout with local changes
	GoVersion string
}

// SetBuildInfo exports ferry_build_info{version,revision,goversion} = 1, the
// usual Prometheus form for joining the version onto other series. A second
// call is ignored; so is a disabled server.
func (s *Server) SetBuildInfo(b BuildInfo) {
	if s.reg == nil {
		return
	}
	rev := b.Revision
	if b.Modified && rev != "" {
		rev += "-modified"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "ferry_build_info",
		Help:        "Always 1; the version, VCS revision and Go version of the running ferry as labels.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": rev, "goversion": b.GoVersion},
	})
	g.Set(1)
	if err := s.reg.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			s.log.Warn().Err(err).Msg("ferry_build_info not exported")
		}
	}
}
