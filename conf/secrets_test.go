package conf

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// No password, however given, shows in an error, in String, in Redacted or
// in fmt output.
func TestSecretsNeverShown(t *testing.T) {
	const secret = "S3cr3tXYZ"
	const numSecret = "90817263"
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", secret+"\n")
	t.Setenv("FERRY_T_SECRET", secret)

	var outputs []string
	record := func(label string, err error) {
		if err == nil {
			return
		}
		outputs = append(outputs, label+": "+err.Error())
		for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
			outputs = append(outputs, label+" (wrapped): "+u.Error())
		}
	}

	// Files that fail, each with the secret somewhere.
	bad := []string{
		"source = \"redis://u:" + secret + "@h:99999\"\ntarget = \"t\"",
		"source = \"http://u:" + secret + "@h\"\ntarget = \"t\"",
		"source = \"redis://u:" + secret + "@h/notadb\"\ntarget = \"t\"",
		"source = \"redis://u:" + secret + "%zz@h\"\ntarget = \"t\"",
		"source = \"redis://" + secret + "@h1,h2\"\ntarget = \"t\"",
		"source = \"redis://u:" + secret + "@h?x=1\"\ntarget = \"t\"",
		"source = \"redis://u:" + secret + "@\"\ntarget = \"t\"",
		"source = \"redis://u:" + secret + "@[::1\"\ntarget = \"t\"",
		"source = \"u:" + secret + "@h:x\"\ntarget = \"t\"",
		"source = \"sentinel://:" + secret + "@s\"\ntarget = \"t\"",
		"target = \"t\"\n[source]\naddr = \"redis://:" + secret + "@s\"\npassword = \"other\"",
		"target = \"t\"\n[source]\naddr = \"redis://:other@s\"\npassword = \"" + secret + "\"",
		"target = \"t\"\n[source]\naddr = \"redis://:" + secret + "@s\"\npassword_file = \"" + pwFile + "\"",
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = \"" + secret + "\"\npassword_file = \"" + pwFile + "\"",
		"target = \"t\"\n[source]\naddr = \"s\"\naddrs = [\"redis://u:" + secret + "@x\"]",
		"target = \"t\"\n[source]\naddr = \"s\"\naddrs = [\"u:" + secret + "@x:bad\"]",
		"target = \"t\"\n[source]\naddr = \"redis://s\"\nsentinel_password = \"" + secret + "\"",
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = " + numSecret,
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = [\"" + secret + "\"]",
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = " + secret,
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = \"" + secret + "\" x",
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = \"" + secret + "\\q\"",
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = '" + secret + "\n",
		"target = \"t\"\n[source]\naddr = \"s\"\nsentinel_password = " + secret,
		"source = redis://u:" + secret + "@h\ntarget = \"t\"",
		"target = \"t\"\nsource = \"redis://u:" + secret + "@h\" junk",
		"[source]\naddr = redis://u:" + secret + "@h",
		"[source]\naddrs = [redis://u:" + secret + "@h]",
		"target = \"t\"\n[source]\naddr = \"redis://:${FERRY_T_SECRET}@s:0\"",
		"target = \"t\"\n[source]\naddr = \"redis://:${FERRY_T_SECRET}@s\"\npassword = \"x\"",
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = \"" + secret + "${NOT_SET_X}\"",
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = \"" + secret + "${\"",
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = \"${" + secret + "\"",
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = \"${ " + secret + " }\"",
		"target = \"t\"\n[source]\naddr = \"s\"\npassword = \"${X-" + secret + "}\"",
		"target = \"t\"\n[source]\naddr = \"redis://u:" + secret + "@s\"\n[source.tls]\nca_file = \"/nonexistent\"",
		"target = \"redis://:" + secret + "@s\"\nsource = \"redis://:" + secret + "@s\"",
	}
	for i, text := range bad {
		_, err := load(t, text+"\n")
		if err == nil {
			t.Errorf("case %d loaded:\n%s", i, text)
			continue
		}
		record(fmt.Sprintf("job case %d", i), err)
		_, err = ParseBatch([]byte("[defaults]\n"+strings.ReplaceAll(strings.ReplaceAll(text, "[source", "[defaults.source"), "[target", "[defaults.target")+"\n[[job]]\nname = \"a\"\nmode = \"sync\"\n"), "jobs.toml")
		record(fmt.Sprintf("batch case %d", i), err)
	}

	// Direct API errors.
	for _, a := range []string{"redis://u:" + secret + "@h:0", "ftp://" + secret + "@h", "redis://" + secret + "@h/x", "redis://:" + secret + "@"} {
		_, err := ParseAddr(a)
		record("ParseAddr", err)
		_, err = parseSeed(a, "redis")
		record("parseSeed", err)
	}
	_, err := Expand("${" + secret)
	record("Expand", err)

	// Successful loads: String, Redacted, fmt.
	good := mustLoad(t, `[source]
addr = "redis://user:`+secret+`@s1"
addrs = ["s2"]
[target]
addr = "sentinel://t1/m"
password = "${FERRY_T_SECRET}"
sentinel_password = "`+secret+`"
`)
	good2 := mustLoad(t, "source = \""+secret+"@s\"\n[target]\naddr = \"rediss://t\"\npassword_file = \""+pwFile+"\"\n")
	if good.Source.Password != secret || good.Target.Password != secret || good2.Target.Password != secret || good2.Source.Password != secret {
		t.Fatal("secrets not resolved")
	}
	b, err := ParseBatch([]byte("[defaults.target]\npassword = \""+secret+"\"\n[[job]]\nname = \"a\"\nmode = \"sync\"\nsource = \"redis://u:"+secret+"@s\"\ntarget = \"t\"\n"), "jobs.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []Job{good, good2, b.Jobs[0].Job} {
		outputs = append(outputs,
			j.String(), fmt.Sprint(j), fmt.Sprintf("%v %+v", j, &j),
			j.Source.Redacted(), j.Target.Redacted(), j.Source.String(),
			fmt.Sprintf("%v %+v %#v %s", j.Source, j.Target, j.Source, j.Target),
			fmt.Sprintf("%+v", []Endpoint{j.Source}))
	}
	outputs = append(outputs, fmt.Sprintf("%+v", b), fmt.Sprintf("%v", b.Jobs))

	for _, o := range outputs {
		if strings.Contains(o, secret) || strings.Contains(o, numSecret) {
			t.Errorf("secret shown in: %s", o)
		}
	}
	if len(outputs) < 80 {
		t.Fatalf("only %d outputs checked", len(outputs))
	}
}
