package conf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// ParseAddr parses one address:
//
//	redis://[user[:pass]@]host[:port][/db]
//	rediss://...                       (TLS)
//	sentinel://[user[:pass]@]host[:port][,host[:port]...]/master-name
//	host[:port]                        (same as redis://host[:port])
//
// The port defaults to 6379 (26379 for sentinel); IPv6 hosts go in
// brackets ([::1]:6379). User info without a colon is a password (as with
// redis-cli -u): write "user:@" for a user without password. User and
// password may be %-escaped. The returned Endpoint has Addr, Scheme, Hosts,
// SentinelMaster, DB, and Username/Password from the user info; other
// fields are zero. Errors show the address redacted; they are *Error with
// Field "addr".
func ParseAddr(s string) (Endpoint, error) {
	red := redactAddr(s)
	bad := func(format string, args ...any) (Endpoint, error) {
		return Endpoint{}, &Error{Field: "addr", Msg: fmt.Sprintf("%q: ", red) + fmt.Sprintf(format, args...)}
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return Endpoint{}, errf("addr", "empty address")
	}
	scheme, rest, ok := splitScheme(t)
	if !ok {
		scheme, rest = "redis", t
	}
	switch scheme {
	case "redis", "rediss", "sentinel":
	default:
		return bad("unsupported scheme %q (use redis://, rediss:// or sentinel://)", scheme)
	}
	e := Endpoint{Addr: s, Scheme: scheme}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		ui := rest[:at]
		rest = rest[at+1:]
		user, pass := "", ui
		if c := strings.IndexByte(ui, ':'); c >= 0 {
			user, pass = ui[:c], ui[c+1:]
		}
		var err1, err2 error
		e.Username, err1 = url.PathUnescape(user)
		e.Password, err2 = url.PathUnescape(pass)
		if err1 != nil || err2 != nil {
			return bad("bad %%-escape in the user info (write a literal %% as %%25)")
		}
	}
	hostPart, path := rest, ""
	if k := strings.IndexAny(rest, "/?#"); k >= 0 {
		hostPart, path = rest[:k], rest[k:]
	}
	if strings.ContainsAny(path, "?#") {
		return bad("query parameters are not supported (use the config keys instead)")
	}
	defPort := "6379"
	if scheme == "sentinel" {
		defPort = "26379"
	}
	parts := strings.Split(hostPart, ",")
	if len(parts) > 1 && scheme != "sentinel" {
		return bad("several hosts in one address are only for sentinel://; list more seed addresses in addrs")
	}
	for _, p := range parts {
		h, err := normHost(p, defPort)
		if err != nil {
			return bad("%v", err)
		}
		e.Hosts = appendNew(e.Hosts, h)
	}
	p := strings.TrimPrefix(path, "/")
	if scheme == "sentinel" {
		name, err := url.PathUnescape(p)
		switch {
		case p == "":
			return bad("a sentinel address needs the master name: sentinel://host:26379/mymaster")
		case err != nil:
			return bad("bad %%-escape in the master name")
		case strings.Contains(p, "/"):
			return bad("bad master name %q (one path element, no /)", p)
		}
		e.SentinelMaster = name
		return e, nil
	}
	if p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 || db > math.MaxInt32 || strings.TrimLeft(p, "0123456789") != "" {
			return bad("bad db %q (want a database number 0 or more, e.g. /0)", p)
		}
		e.DB = db
	}
	return e, nil
}

// parseSeed parses one entry of addrs: host[:port] or scheme://host[:port]
// with the scheme of the main address; no credentials, no path.
func parseSeed(s, scheme string) (string, error) {
	red := redactAddr(s)
	t := strings.TrimSpace(s)
	if sc, rest, ok := splitScheme(t); ok {
		if sc != scheme {
			return "", fmt.Errorf("%q: scheme %s:// differs from addr's %s://", red, sc, scheme)
		}
		t = rest
	}
	if strings.Contains(t, "@") {
		return "", fmt.Errorf("%q: no credentials here: give them in addr, username and password", red)
	}
	if strings.ContainsAny(t, "/?#,") {
		return "", fmt.Errorf("%q: want one host:port, without path or parameters", red)
	}
	defPort := "6379"
	if scheme == "sentinel" {
		defPort = "26379"
	}
	h, err := normHost(t, defPort)
	if err != nil {
		return "", fmt.Errorf("%q: %v", red, err)
	}
	return h, nil
}

// splitScheme splits "scheme://rest" when what precedes :// is a scheme
// token; the scheme is lower-cased.
func splitScheme(s string) (scheme, rest string, ok bool) {
	i := strings.Index(s, "://")
	if i <= 0 {
		return "", s, false
	}
	for k, c := range s[:i] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || k > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return "", s, false
		}
	}
	return strings.ToLower(s[:i]), s[i+3:], true
}

// normHost returns host:port (IPv6 bracketed, host lower-cased).
func normHost(p, defPort string) (string, error) {
	var host, port string
	switch {
	case p == "":
		return "", fmt.Errorf("missing host")
	case strings.HasPrefix(p, "["):
		end := strings.IndexByte(p, ']')
		if end < 0 {
			return "", fmt.Errorf("missing ] after IPv6 address")
		}
		host = p[1:end]
		after := p[end+1:]
		switch {
		case after == "":
			port = defPort
		case after[0] == ':':
			port = after[1:]
		default:
			return "", fmt.Errorf("unexpected %q after ]", after)
		}
		ip, _, _ := strings.Cut(host, "%")
		if net.ParseIP(ip) == nil || !strings.Contains(ip, ":") {
			return "", fmt.Errorf("bad IPv6 address %q", host)
		}
	case strings.Count(p, ":") > 1:
		return "", fmt.Errorf("IPv6 addresses need brackets, e.g. [::1]:6379")
	default:
		var hasPort bool
		host, port, hasPort = strings.Cut(p, ":")
		if !hasPort {
			port = defPort
		}
		if host == "" {
			return "", fmt.Errorf("missing host")
		}
		for _, c := range host {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
				return "", fmt.Errorf("bad host %q", host)
			}
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
		return "", fmt.Errorf("bad port %q (want 1..65535)", port)
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(n)), nil
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// redactAddr returns s with the password part of its user info replaced by
// "***": "redis://user:***@host", or "redis://***@host" when the user info
// has no colon (it is then a password). It does not need s to be valid.
func redactAddr(s string) string {
	prefix, rest := "", s
	if i := strings.Index(s, "://"); i > 0 {
		if _, _, ok := splitScheme(s); ok {
			prefix, rest = s[:i+3], s[i+3:]
		}
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return s
	}
	ui := rest[:at]
	if c := strings.IndexByte(ui, ':'); c >= 0 {
		ui = ui[:c+1] + "***"
	} else {
		ui = "***"
	}
	return prefix + ui + "@" + rest[at+1:]
}

// Redacted returns the address with any password replaced by "***". For
// an Endpoint built without Addr it is made from Scheme, Hosts,
// SentinelMaster and DB. Passwords given apart from the address are not in
// it at all.
func (e Endpoint) Redacted() string {
	if e.Addr != "" {
		return redactAddr(strings.TrimSpace(e.Addr))
	}
	if len(e.Hosts) == 0 {
		return ""
	}
	scheme := e.Scheme
	if scheme == "" {
		scheme = "redis"
	}
	s := scheme + "://" + strings.Join(e.Hosts, ",")
	switch {
	case scheme == "sentinel":
		s += "/" + url.PathEscape(e.SentinelMaster)
	case e.DB != 0:
		s += "/" + strconv.Itoa(e.DB)
	}
	return s
}

// TLSConfig returns the TLS configuration of the endpoint, or nil when TLS
// is off. It loads the CA bundle and the client key pair; errors are *Error
// naming the field (tls.ca_file, tls.cert_file, tls.key_file) and the file.
// ServerName is left empty unless configured: dial with a tls.Dialer (or
// set ServerName on a Clone per host) so that each host is verified by its
// own name.
func (e Endpoint) TLSConfig() (*tls.Config, error) {
	if !e.TLSOn() {
		return nil, nil
	}
	t := e.TLS
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // the user asked for it
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, &Error{Field: "tls.ca_file", Msg: "cannot read CA file: " + err.Error(), Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errf("tls.ca_file", "%s: no PEM certificate in it", t.CAFile)
		}
		c.RootCAs = pool
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		return nil, errf("tls.key_file", "required with tls.cert_file (the client certificate's private key)")
	case t.CertFile == "" && t.KeyFile != "":
		return nil, errf("tls.cert_file", "required with tls.key_file (the client certificate)")
	case t.CertFile != "":
		certPEM, err := os.ReadFile(t.CertFile)
		if err != nil {
			return nil, &Error{Field: "tls.cert_file", Msg: "cannot read certificate: " + err.Error(), Err: err}
		}
		keyPEM, err := os.ReadFile(t.KeyFile)
		if err != nil {
			return nil, &Error{Field: "tls.key_file", Msg: "cannot read key: " + err.Error(), Err: err}
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, &Error{Field: "tls.cert_file", Msg: fmt.Sprintf("%s with key %s: %v", t.CertFile, t.KeyFile, err), Err: err}
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
