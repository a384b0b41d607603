package receiver

import "time"

// summary logs counts per interval at info until Shutdown.
func (s *Server) summary(every time.Duration) {
	defer close(s.summaryDone)
	if every < 0 {
		<-s.stopSummary
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last [6]uint64
	report := func(final bool) {
		cur := [6]uint64{s.counts[0].Load(), s.counts[1].Load(), s.counts[2].Load(), s.dups.Load(), s.accepted.Load(), s.denied.Load()}
		msg := "summary"
		if final {
			msg = "final summary"
		}
		s.mu.Lock()
		open := len(s.conns)
		s.mu.Unlock()
		s.log.Info(msg, "ok_200", cur[0]-last[0], "invalid_400", cur[1]-last[1], "unavailable_500", cur[2]-last[2],
			"duplicates", cur[3]-last[3], "connections", cur[4]-last[4], "denied", cur[5]-last[5], "open", open)
		last = cur
	}
	for {
		select {
		case <-t.C:
			report(false)
		case <-s.stopSummary:
			report(true)
			return
		}
	}
}
