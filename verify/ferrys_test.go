package verify

import "testing"

func TestFerrysOwnKeys(t *testing.T) {
	for k, want := range map[string]bool{
		"__ferry:orders:pos":      true,
		"__ferry:orders:pos:3":    true,
		"__ferry:{06S}:orders":    true,
		"__ferry:{06S}:orders:s1": true,
		"__ferry:orders:probe":    true,
		"__ferry:orders:lease":    true,
		"__ferry:probe:ab12:k":    true,
		"__ferry:flush-watch:x":   true,
		"__ferry:notes":           false,
		"__ferry:orders:pos:x":    false,
		"__ferry:orders:position": false,
		"user:__ferry:orders:pos": false,
		"plain":                   false,
	} {
		if got := ferrys(k); got != want {
			t.Errorf("ferrys(%q) = %v, want %v", k, got, want)
		}
	}
}
