package config

import (
	"cmp"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/resman-pbx/resman/config/confcheck"
)

// Problem is one thing wrong with a config: Key is the full key path
// (node.role, services[0].check.sip), Msg says what is wrong and what is
// expected. File, set only by the checks of several files (CheckDeployment),
// names the file Key is in. The components' sections record theirs with
// package confcheck.
type Problem = confcheck.Problem

// Problems is every problem found in a config. As an error it prints one
// "key: message" per line, in the order the keys appear in the schema.
type Problems []Problem

func (ps Problems) Error() string {
	sorted := slices.Clone(ps)
	sorted.sort()
	lines := make([]string, len(sorted))
	for i, p := range sorted {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sort orders by file, then by schema position; problems of one key keep
// their order.
func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := cmp.Compare(a.File, b.File); c != 0 {
			return c
		}
		if c := slices.Compare(keyRank(a.Key), keyRank(b.Key)); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
}

// unknownRank sorts keys that are not in the schema after known siblings.
const unknownRank = 1 << 30

// keyRank maps a key path to its position in the schema: field indexes
// for names, the number for [n].
func keyRank(key string) []int {
	var rank []int
	t := reflect.TypeFor[Config]()
	for part := range strings.SplitSeq(key, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			idx := unknownRank
			if t != nil && t.Kind() == reflect.Struct {
				if i := slices.IndexFunc(fieldsOf(t), func(f field) bool { return f.name == name }); i >= 0 {
					idx = i
					t = t.Field(fieldsOf(t)[i].index).Type
					for t.Kind() == reflect.Pointer {
						t = t.Elem()
					}
				} else {
					t = nil
				}
			} else {
				t = nil
			}
			rank = append(rank, idx)
		}
		// rest is like "0]" or "0][1]".
		for rest != "" {
			num, after, _ := strings.Cut(rest, "]")
			n, err := strconv.Atoi(num)
			if err != nil {
				n = unknownRank
			}
			rank = append(rank, n)
			if t != nil && t.Kind() == reflect.Slice {
				t = t.Elem()
			} else {
				t = nil
			}
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return rank
}
