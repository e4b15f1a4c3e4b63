package xmpp

import "testing"

// TestGCPercentFor: the goal sits at the floor for a small live heap and
// the default policy holds from half the floor up.
func TestGCPercentFor(t *testing.T) {
	const floor = 64 << 20
	tests := []struct {
		live uint64
		want int
	}{
		{0, 100},             // nothing measured yet: the default
		{4 << 20, 1500},      // goal 4 MiB * 16 = 64 MiB
		{16 << 20, 300},      // 16 MiB * 4
		{32 << 20, 100},      // half the floor: the default already reaches it
		{500 << 20, 100},     // many idle sessions: untouched
		{1, floor*100 - 100}, // tiny heaps get the floor too
	}
	for _, tc := range tests {
		got := gcPercentFor(tc.live, floor)
		if got != tc.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", tc.live, got, tc.want)
		}
		if goal := tc.live * uint64(100+got) / 100; tc.live > 0 && goal < min(floor, 2*tc.live) {
			t.Errorf("live %d: goal %d is below the floor", tc.live, goal)
		}
	}
}
