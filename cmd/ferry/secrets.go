package main

// Credentials of the source and the target from the command line and the
// environment. A password can come from the address (--source, $FERRY_SOURCE
// or the file's addr), from --source-password-file ($FERRY_SOURCE_PASSWORD_FILE),
// from $FERRY_SOURCE_PASSWORD, or from the file's password / password_file.
// The highest level that gives one wins (command line > environment > file)
// and the lower ones are dropped; two ways at the same level are left to
// conf's validation, which refuses them as ambiguous unless they agree.

import (
	"fmt"
	"os"
	"strings"

	"github.com/ferry-dev/ferry/conf"
)

// Where a setting came from, lowest first.
const (
	levelNone = iota
	levelFile
	levelEnv
	levelArgs
)

// level is where the value v of flag name came from.
func (f *jobFlags) level(name, v string) int {
	switch {
	case v == "":
		return levelNone
	case f.fromArgs[name]:
		return levelArgs
	}
	return levelEnv
}

// credentials applies side's ("source" or "target") credential flags and
// variables to e, whose Addr is already final (addr is the flag's value,
// "" when the address came from the file).
func (f *jobFlags) credentials(e *conf.Endpoint, side, addr, username, passwordFile string) {
	if !e.IsSet() {
		return
	}
	addrLevel := levelFile
	if addr != "" {
		addrLevel = f.level(side, addr)
	}
	// A bad address is reported by Validate; here it only has no user info.
	p, _ := conf.ParseAddr(e.Addr)
	if p.Password != "" && addrLevel == levelArgs {
		f.warnings = append(f.warnings, fmt.Sprintf(
			"the password in --%s is visible to other users of this host (ps, /proc/<pid>/cmdline): give it in $%s or --%s-password-file instead",
			side, envName(side+"-password"), side))
	}

	pwAddr := levelNone
	if p.Password != "" {
		pwAddr = addrLevel
	}
	pwFile := f.level(side+"-password-file", passwordFile)
	envPw, _ := f.getenv(envName(side + "-password"))
	pwEnv := levelNone
	if envPw != "" {
		pwEnv = levelEnv
	}
	pwConf := levelNone
	if e.Password != "" || e.PasswordFile != "" {
		pwConf = levelFile
	}
	top := max(pwAddr, pwFile, pwEnv, pwConf)
	if pwAddr != levelNone && pwAddr < top {
		e.Addr = stripUserinfo(e.Addr, true, false)
	}
	if pwConf < top {
		e.Password, e.PasswordFile = "", ""
	}
	if pwEnv == top && pwEnv != levelNone {
		e.Password = envPw
	}
	if pwFile == top && pwFile != levelNone {
		e.PasswordFile = passwordFile
	}

	if u := f.level(side+"-username", username); u != levelNone {
		if p.Username != "" && addrLevel < u {
			e.Addr = stripUserinfo(e.Addr, false, true)
		}
		e.Username = username
	}
}

// stripUserinfo removes the password and/or the user name from the user
// info of an address (redis://user:pass@host, redis://pass@host,
// user:pass@host:port), keeping the rest as it is.
func stripUserinfo(addr string, password, user bool) string {
	prefix, rest := "", addr
	if i := strings.Index(addr, "://"); i > 0 {
		prefix, rest = addr[:i+3], addr[i+3:]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return addr
	}
	ui, host := rest[:at], rest[at+1:]
	u, pw, hasColon := strings.Cut(ui, ":")
	if !hasColon { // user info without a colon is a password
		u, pw = "", ui
	}
	if password {
		pw = ""
	}
	if user {
		u = ""
	}
	switch {
	case u == "" && pw == "":
		return prefix + host
	case pw == "":
		return prefix + u + ":@" + host // a user without a password
	}
	return prefix + u + ":" + pw + "@" + host
}

// passwordFileWarnings warns about password files other users may read.
// They are not refused: Kubernetes mounts Secret files 0644 by default.
func passwordFileWarnings(j conf.Job) []string {
	var out []string
	for _, e := range []struct {
		side string
		path string
	}{{"source", j.Source.PasswordFile}, {"target", j.Target.PasswordFile}} {
		if e.path == "" {
			continue
		}
		if st, err := os.Stat(e.path); err == nil && st.Mode().Perm()&0o004 != 0 {
			out = append(out, fmt.Sprintf("the %s password file %s is readable by every user of this host (mode %04o): chmod 600 it",
				e.side, e.path, st.Mode().Perm()))
		}
	}
	return out
}
