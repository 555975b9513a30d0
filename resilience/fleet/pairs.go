package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/resman-pbx/resman/config/confcheck"
)

// MaxPairsFileSize bounds one file of fleet.pairs_dir.
const MaxPairsFileSize = 16 << 20

// pairsFile is one file of fleet.pairs_dir.
type pairsFile struct {
	Pairs []PairConfig `yaml:"pairs"`
}

// ReadPairsDir reads every *.yaml and *.yml file of dir (not its
// subdirectories, not hidden files), in name order. Each file is
// "pairs:" followed by a list of pairs (name, nodes, token), and nothing
// else: an unknown key is an error. The pairs are returned unchecked, one
// list per file (CheckPairs checks them). A file that cannot be read is a
// confcheck.Problem naming it.
func ReadPairsDir(dir string) ([]PairList, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fleet.pairs_dir: %w", err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") {
			continue
		}
		if ext := filepath.Ext(n); ext == ".yaml" || ext == ".yml" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var lists []PairList
	var ps confcheck.Problems
	for _, n := range names {
		path := filepath.Join(dir, n)
		pairs, err := readPairsFile(path)
		if err != nil {
			ps = append(ps, confcheck.Problem{File: path, Msg: err.Error()})
			continue
		}
		lists = append(lists, PairList{File: path, Key: "pairs", Pairs: pairs})
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return lists, nil
}

func readPairsFile(path string) ([]PairConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPairsFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxPairsFileSize {
		return nil, fmt.Errorf("larger than %d MiB: split it", MaxPairsFileSize>>20)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var pf pairsFile
	if err := dec.Decode(&pf); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New(`empty: write "pairs:" and a list of pairs`)
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var more pairsFile
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("holds more than one YAML document: write one pairs: list per file")
	}
	if len(pf.Pairs) == 0 {
		return nil, errors.New(`no pair: write "pairs:" and a list of pairs (name, nodes, token)`)
	}
	return pf.Pairs, nil
}
