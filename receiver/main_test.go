package receiver

import (
	"testing"

	"spoolgate/internal/e2e"
)

// TestMain checks for leaked goroutines and stops the shared RabbitMQ node
// of the amqp sink's tests (e2e.RabbitShared).
func TestMain(m *testing.M) { e2e.Main(m, nil) }
