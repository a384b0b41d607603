package conf

import _ "embed"

// Shipped is the conf.properties the packages install: every key with its
// default and its comment. spoolgate init writes a new instance's config
// from it.
//
//go:embed conf.properties
var Shipped []byte
