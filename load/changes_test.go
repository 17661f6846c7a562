package load

import "testing"

func TestChangeNeed(t *testing.T) {
	const over = MaxChangedKeys + 1
	for _, c := range []struct {
		need             ChangeNeed
		changed          int64
		partitions, keys bool
	}{
		{ChangesAll, 1, true, true},
		{ChangesAll, over, true, false},
		{ChangesByPartition, 1, true, false},
		{ChangesByPartition, over, true, false},
		{ChangesByKey, 1, false, true},
		{ChangesByKey, MaxChangedKeys, false, true},
		{ChangesByKey, over, true, false},
		{ChangesNone, 1, false, false},
		{ChangesNone, over, false, false},
		{ChangesAll, 0, true, false},
	} {
		if got := c.need.Partitions(c.changed); got != c.partitions {
			t.Errorf("ChangeNeed(%d).Partitions(%d) = %v, want %v", c.need, c.changed, got, c.partitions)
		}
		if got := c.need.Keys(c.changed); got != c.keys {
			t.Errorf("ChangeNeed(%d).Keys(%d) = %v, want %v", c.need, c.changed, got, c.keys)
		}
	}
}

func TestLakeNeeds(t *testing.T) {
	RegisterLake("needs-test", ChangesByKey, nil)
	if got := LakeNeeds("needs-test"); got != ChangesByKey {
		t.Errorf("LakeNeeds of a registered format = %d, want %d", got, ChangesByKey)
	}
	if got := LakeNeeds("no-such-format"); got != ChangesAll {
		t.Errorf("LakeNeeds of an unknown format = %d, want ChangesAll", got)
	}
}
