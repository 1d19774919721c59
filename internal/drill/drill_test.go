package drill

import "testing"

func TestTrialsScales(t *testing.T) {
	t.Setenv(EnvScale, "")
	if got := Trials(t, 3); got != 3 {
		t.Fatalf("unset: %d, want 3", got)
	}
	t.Setenv(EnvScale, "10")
	if got := Trials(t, 3); got != 30 {
		t.Fatalf("scale 10: %d, want 30", got)
	}
}
