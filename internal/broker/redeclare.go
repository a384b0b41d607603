package broker

// Redeclare declares the publisher's queue again on its channel, if it is
// connected (nil otherwise: the next connection declares it anyway). A
// caller whose messages came back returned (the queue was deleted under
// it) calls it so that the next publish has a queue again. A queue that
// now exists with other arguments makes the broker close the channel;
// the publisher then reconnects and reports the error through Healthy.
// Safe for concurrent use.
func (p *Publisher) Redeclare() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil || p.ch.IsClosed() {
		return nil
	}
	return Declare(p.ch, p.q)
}
