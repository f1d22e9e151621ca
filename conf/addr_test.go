package conf

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseAddr(t *testing.T) {
	cases := []struct {
		in   string
		want Endpoint
	}{
		{"redis://10.0.0.1:6379", Endpoint{Scheme: "redis", Hosts: []string{"10.0.0.1:6379"}}},
		{"redis://10.0.0.1", Endpoint{Scheme: "redis", Hosts: []string{"10.0.0.1:6379"}}},
		{"redis://host", Endpoint{Scheme: "redis", Hosts: []string{"host:6379"}}},
		{"redis://Host.Example.COM:7000/", Endpoint{Scheme: "redis", Hosts: []string{"host.example.com:7000"}}},
		{"REDIS://h:1/15", Endpoint{Scheme: "redis", Hosts: []string{"h:1"}, DB: 15}},
		{"redis://h/0", Endpoint{Scheme: "redis", Hosts: []string{"h:6379"}}},
		{"rediss://h:6380/2", Endpoint{Scheme: "rediss", Hosts: []string{"h:6380"}, DB: 2}},
		{"h:7000", Endpoint{Scheme: "redis", Hosts: []string{"h:7000"}}},
		{"localhost", Endpoint{Scheme: "redis", Hosts: []string{"localhost:6379"}}},
		{"  redis://h  ", Endpoint{Scheme: "redis", Hosts: []string{"h:6379"}}},
		{"redis://[::1]:6379", Endpoint{Scheme: "redis", Hosts: []string{"[::1]:6379"}}},
		{"redis://[::1]", Endpoint{Scheme: "redis", Hosts: []string{"[::1]:6379"}}},
		{"[2001:db8::1]:7001", Endpoint{Scheme: "redis", Hosts: []string{"[2001:db8::1]:7001"}}},
		{"redis://[fe80::1%eth0]:6379", Endpoint{Scheme: "redis", Hosts: []string{"[fe80::1%eth0]:6379"}}},
		{"redis://user:pass@h:1/3", Endpoint{Scheme: "redis", Hosts: []string{"h:1"}, DB: 3, Username: "user", Password: "pass"}},
		{"redis://:pass@h", Endpoint{Scheme: "redis", Hosts: []string{"h:6379"}, Password: "pass"}},
		{"redis://pass@h", Endpoint{Scheme: "redis", Hosts: []string{"h:6379"}, Password: "pass"}},
		{"redis://user:@h", Endpoint{Scheme: "redis", Hosts: []string{"h:6379"}, Username: "user"}},
		{"redis://u:p%40ss%3Aw%2Fd%25@h", Endpoint{Scheme: "redis", Hosts: []string{"h:6379"}, Username: "u", Password: "p@ss:w/d%"}},
		{"redis://u:p@ss/w@h:1", Endpoint{Scheme: "redis", Hosts: []string{"h:1"}, Username: "u", Password: "p@ss/w"}},
		{"u:p@h:1", Endpoint{Scheme: "redis", Hosts: []string{"h:1"}, Username: "u", Password: "p"}},
		{"sentinel://s1:26379,s2:26380/mymaster", Endpoint{Scheme: "sentinel", Hosts: []string{"s1:26379", "s2:26380"}, SentinelMaster: "mymaster"}},
		{"sentinel://s1,s2,s1/my%20master", Endpoint{Scheme: "sentinel", Hosts: []string{"s1:26379", "s2:26379"}, SentinelMaster: "my master"}},
		{"sentinel://:pw@[::1]/m", Endpoint{Scheme: "sentinel", Hosts: []string{"[::1]:26379"}, SentinelMaster: "m", Password: "pw"}},
	}
	for _, c := range cases {
		got, err := ParseAddr(c.in)
		if err != nil {
			t.Errorf("ParseAddr(%q): %v", c.in, err)
			continue
		}
		c.want.Addr = c.in
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseAddr(%q) =\n %+v\nwant\n %+v", c.in, fields(got), fields(c.want))
		}
	}
}

// fields shows an Endpoint's fields (its String/GoString are redacted).
func fields(e Endpoint) any {
	type plain Endpoint
	return plain(e)
}

func TestParseAddrErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `config: addr: empty address`},
		{"   ", `config: addr: empty address`},
		{"http://h:1", `config: addr: "http://h:1": unsupported scheme "http" (use redis://, rediss:// or sentinel://)`},
		{"unix:///tmp/redis.sock", `config: addr: "unix:///tmp/redis.sock": unsupported scheme "unix"`},
		{"redis://", `config: addr: "redis://": missing host`},
		{"redis://:6379", `config: addr: "redis://:6379": missing host`},
		{"redis://u:p@", `config: addr: "redis://u:***@": missing host`},
		{"redis://h:", `config: addr: "redis://h:": bad port "" (want 1..65535)`},
		{"redis://h:0", `config: addr: "redis://h:0": bad port "0" (want 1..65535)`},
		{"redis://h:65536", `config: addr: "redis://h:65536": bad port "65536" (want 1..65535)`},
		{"redis://h:-1", `bad port "-1"`},
		{"redis://h:+1", `bad port "+1"`},
		{"redis://h:abc", `config: addr: "redis://h:abc": bad port "abc" (want 1..65535)`},
		{"redis://h/abc", `config: addr: "redis://h/abc": bad db "abc" (want a database number 0 or more, e.g. /0)`},
		{"redis://h/-1", `bad db "-1"`},
		{"redis://h/+1", `bad db "+1"`},
		{"redis://h/1/2", `bad db "1/2"`},
		{"redis://h/99999999999", `bad db "99999999999"`},
		{"redis://h?db=1", `config: addr: "redis://h?db=1": query parameters are not supported (use the config keys instead)`},
		{"redis://h1,h2", `config: addr: "redis://h1,h2": several hosts in one address are only for sentinel://; list more seed addresses in addrs`},
		{"redis://::1:6379", `config: addr: "redis://::1:6379": IPv6 addresses need brackets, e.g. [::1]:6379`},
		{"redis://[::1", `missing ] after IPv6 address`},
		{"redis://[::1]x", `unexpected "x" after ]`},
		{"redis://[nothex]:1", `bad IPv6 address "nothex"`},
		{"redis://[1.2.3.4]:1", `bad IPv6 address "1.2.3.4"`},
		{"redis://ho st:1", `bad host "ho st"`},
		{"redis://u:p%zz@h", `config: addr: "redis://u:***@h": bad %-escape in the user info (write a literal % as %25)`},
		{"sentinel://s1", `config: addr: "sentinel://s1": a sentinel address needs the master name: sentinel://host:26379/mymaster`},
		{"sentinel://s1/", `a sentinel address needs the master name`},
		{"sentinel://s1/a/b", `bad master name "a/b" (one path element, no /)`},
		{"sentinel://s1,/m", `config: addr: "sentinel://s1,/m": missing host`},
	}
	for _, c := range cases {
		_, err := ParseAddr(c.in)
		if err == nil {
			t.Errorf("ParseAddr(%q): no error, want %q", c.in, c.want)
			continue
		}
		wantErr(t, err, c.want)
	}
}

func TestRedacted(t *testing.T) {
	cases := []struct{ in, want string }{
		{"redis://h:1", "redis://h:1"},
		{"redis://user:pass@h:1/0", "redis://user:***@h:1/0"},
		{"redis://:pass@h", "redis://:***@h"},
		{"redis://pass@h", "redis://***@h"},
		{"rediss://u:p@ss:w@h", "rediss://u:***@h"},
		{"sentinel://u:pw@s1,s2/m", "sentinel://u:***@s1,s2/m"},
		{"u:pw@h:1", "u:***@h:1"},
		{"u:p://x@h", "u:***@h"},
		{"http://u:pw@h", "http://u:***@h"}, // invalid addresses are redacted too
		{"redis://u:pw@h:bad/x?y", "redis://u:***@h:bad/x?y"},
	}
	for _, c := range cases {
		if got := (Endpoint{Addr: c.in}).Redacted(); got != c.want {
			t.Errorf("Redacted(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Without Addr, from the parts.
	for _, c := range []struct {
		e    Endpoint
		want string
	}{
		{Endpoint{}, ""},
		{Endpoint{Hosts: []string{"a:1"}, Password: "x"}, "redis://a:1"},
		{Endpoint{Scheme: "rediss", Hosts: []string{"a:1", "b:2"}, DB: 3}, "rediss://a:1,b:2/3"},
		{Endpoint{Scheme: "sentinel", Hosts: []string{"s:26379"}, SentinelMaster: "m"}, "sentinel://s:26379/m"},
	} {
		if got := c.e.Redacted(); got != c.want {
			t.Errorf("Redacted(%+v) = %q, want %q", fields(c.e), got, c.want)
		}
	}
}

func TestSeeds(t *testing.T) {
	for _, c := range []struct{ in, scheme, want, err string }{
		{"h", "redis", "h:6379", ""},
		{"h:1", "redis", "h:1", ""},
		{"[::1]:2", "redis", "[::1]:2", ""},
		{"redis://h:1", "redis", "h:1", ""},
		{"rediss://h:1", "rediss", "h:1", ""},
		{"s", "sentinel", "s:26379", ""},
		{"sentinel://s:1", "sentinel", "s:1", ""},
		{"redis://h", "rediss", "", `"redis://h": scheme redis:// differs from addr's rediss://`},
		{"redis://u:pw@h", "redis", "", `"redis://u:***@h": no credentials here: give them in addr, username and password`},
		{"h/1", "redis", "", `"h/1": want one host:port, without path or parameters`},
		{"a,b", "sentinel", "", `want one host:port`},
		{"", "redis", "", `"": missing host`},
	} {
		got, err := parseSeed(c.in, c.scheme)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseSeed(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseSeed(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
