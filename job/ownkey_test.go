package job

import "testing"

func TestOwnKey(t *testing.T) {
	for _, c := range []struct {
		key  string
		want bool
	}{
		{"__ferry:orders:pos", true},
		{"__ferry:orders:probe", true},
		{"__ferry:{06S}:orders", true},
		{"__ferry:{06S}:orders:s2", true},
		{"__ferry:orders", true},
		{"__ferry:orders2:pos", false}, // another job
		{"__ferry:other:pos", false},
		{"__ferry:{06S}:other", false},
		{"__ferry:{06S}orders", false},
		{"__ferry:{06S", false},
		{"ferry:orders:pos", false},
		{"orders", false},
	} {
		if got := ownKey("orders", []byte(c.key)); got != c.want {
			t.Errorf("ownKey(orders, %q) = %v, want %v", c.key, got, c.want)
		}
	}
}
