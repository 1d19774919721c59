package worker

import (
	"os"
	"testing"

	"github.com/shoal-dev/shoal/fleet/fleettest"
)

func TestMain(m *testing.M) {
	fleettest.ServeIfHelper()
	os.Exit(m.Run())
}
