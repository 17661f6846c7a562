package load

import "testing"

func TestPartitionNeedLists(t *testing.T) {
	for _, c := range []struct {
		need    PartitionNeed
		changed int64
		want    bool
	}{
		{PartitionsAlways, 1, true},
		{PartitionsAlways, MaxChangedKeys + 1, true},
		{PartitionsUnlessKeyed, 1, false},
		{PartitionsUnlessKeyed, MaxChangedKeys, false},
		{PartitionsUnlessKeyed, MaxChangedKeys + 1, true},
		{PartitionsNever, 1, false},
		{PartitionsNever, MaxChangedKeys + 1, false},
	} {
		if got := c.need.Lists(c.changed); got != c.want {
			t.Errorf("PartitionNeed(%d).Lists(%d) = %v, want %v", c.need, c.changed, got, c.want)
		}
	}
}

func TestLakeNeeds(t *testing.T) {
	RegisterLake("needs-test", PartitionsUnlessKeyed, nil)
	if got := LakeNeeds("needs-test"); got != PartitionsUnlessKeyed {
		t.Errorf("LakeNeeds of a registered format = %d, want %d", got, PartitionsUnlessKeyed)
	}
	if got := LakeNeeds("no-such-format"); got != PartitionsAlways {
		t.Errorf("LakeNeeds of an unknown format = %d, want PartitionsAlways", got)
	}
}
