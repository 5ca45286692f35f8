package lifecycle

import "time"

// rateWindow is the shortest interval a rate is computed over: progress
// events arrive in bursts (one per Update batch, one per 8 MiB chunk), and a
// rate over a few milliseconds says nothing.
const rateWindow = time.Second

// rateSample smooths a counter's rate of change.
type rateSample struct {
	at   time.Time
	v    float64
	rate float64
}

// observe records value v at now and returns the smoothed rate per second.
// A counter that went back (a new transfer) starts over.
func (s *rateSample) observe(v float64, now time.Time) float64 {
	switch {
	case s.at.IsZero() || v < s.v:
		*s = rateSample{at: now, v: v}
	case now.Sub(s.at) >= rateWindow:
		r := (v - s.v) / now.Sub(s.at).Seconds()
		if s.rate == 0 {
			s.rate = r
		} else {
			// Exponential smoothing: a step change shows within a few
			// windows, a burst does not swing the estimate.
			s.rate = 0.5*s.rate + 0.5*r
		}
		s.at, s.v = now, v
	}
	return s.rate
}

// eta is the time to cover left at rate per second (0 if unknown).
func eta(left, rate float64) time.Duration {
	if left <= 0 || rate <= 0 {
		return 0
	}
	return time.Duration(left / rate * float64(time.Second))
}

// updateRates refreshes the rates, the step and the ETA of p at now.
func updateRates(phase Phase, nodeReady bool, p *Progress, now time.Time) {
	p.ApplyRate = p.applyS.observe(float64(p.AppliedIndex), now)
	p.ReceiveRate = p.receiveS.observe(float64(p.ReceivedBytes), now)
	p.InstallRate = p.installS.observe(float64(p.SnapshotBytes), now)
	p.SendRate = p.sendS.observe(float64(p.SentBytes), now)
	leaderRate := p.leaderSentS.observe(float64(p.LeaderSentBytes), now)
	p.Step, p.ETA = "", 0
	if phase == Joining && nodeReady {
		// A joiner whose replica runs and has caught up: it waits to
		// vote (DESIGN.md "Cluster membership").
		p.Step = StepAwaitingPromotion
		return
	}
	if phase != Recovering {
		return
	}
	switch {
	case p.SnapshotTotal > 0 && p.SnapshotBytes < p.SnapshotTotal:
		p.Step = StepInstalling
		p.ETA = eta(float64(p.SnapshotTotal-p.SnapshotBytes), p.InstallRate)
	case p.ReceivedBytes > 0:
		p.Step = StepReceiving
		// The received bytes are compressed; the leader's count is not,
		// and it is what the total is in.
		if p.LeaderSentTotal > 0 {
			p.ETA = eta(float64(p.LeaderSentTotal-p.LeaderSentBytes), leaderRate)
		}
	default:
		p.Step = StepReplaying
		if p.TargetIndex > p.AppliedIndex {
			p.ETA = eta(float64(p.TargetIndex-p.AppliedIndex), p.ApplyRate)
		}
	}
}
