package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's demo commands are the banner's walkthrough (as under go run,
// with ./resman built from the clone), and docs/README.md's pasted banner
// is what the demo prints when installed: one source, demoTry.
func TestDemoDocsMatchTheBanner(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(renderDemoTry(newDemoPorts(9440), "<token printed by the demo>", "./resman"), "\n  ", "\n")
	want = "```sh\n" + strings.TrimPrefix(want, "  ") + "```\n"
	if !strings.Contains(string(raw), want) {
		t.Errorf("README.md does not show the demo's walkthrough; paste this block:\n%s", want)
	}

	raw, err = os.ReadFile("../../docs/README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```\n\\$ resman demo\n(.*?)```").FindSubmatch(raw)
	if m == nil {
		t.Fatal("docs/README.md has no pasted `$ resman demo` block")
	}
	pasted := string(m[1])
	field := func(re string) string {
		f := regexp.MustCompile(re).FindStringSubmatch(pasted)
		if f == nil {
			t.Fatalf("the pasted banner has no %s", re)
		}
		return f[1]
	}
	var banner bytes.Buffer
	printDemoBanner(&banner, newDemoPorts(9440), field(`Token    (\S+)`), field(`login admin / (\S+)`), field(`Data     (\S+)`), "resman")
	if pasted != banner.String() {
		t.Errorf("docs/README.md's pasted banner is not what the demo prints; paste:\n%s", banner.String())
	}
}
