package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// YAML renders c with the schema's key names, in schema order, so the
// output of `resman config check --print` can be read back as a config.
// Absent optional sections are left out; durations print like 200ms.
func (c *Config) YAML() ([]byte, error) {
	n, err := yamlNode(reflect.ValueOf(*c))
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(n)
}

func yamlNode(v reflect.Value) (*yaml.Node, error) {
	if v.Type() == durationType {
		return &yaml.Node{Kind: yaml.ScalarNode, Value: time.Duration(v.Int()).String()}, nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil, nil
		}
		return yamlNode(v.Elem())
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if key == "" || key == "-" {
				continue
			}
			child, err := yamlNode(v.Field(i))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			if child == nil {
				continue
			}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, child)
		}
		return m, nil
	case reflect.Slice:
		if v.Len() == 0 {
			return nil, nil // an empty list is no list
		}
		s := &yaml.Node{Kind: yaml.SequenceNode}
		if v.Type().Elem().Kind() == reflect.String {
			s.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			child, err := yamlNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			if child != nil {
				s.Content = append(s.Content, child)
			}
		}
		return s, nil
	}
	var n yaml.Node
	if err := n.Encode(v.Interface()); err != nil {
		return nil, err
	}
	return &n, nil
}
