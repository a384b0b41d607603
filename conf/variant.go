package conf

// variants are values tried, in order, by Variant: one of them is valid for
// every key whose value needs no file on disk.
var variants = []string{
	"7", "2", "17", "false", "true", "13s", "250ms", "/tmp/spoolgate-variant",
	"127.0.0.1:1", "10.0.0.0/8", "append", "never", "json", "debug",
	"process_no", "0123456789abcdef", "h", "classic", "amqp://127.0.0.1:1/", "strict",
}

// variantConfigs are whole files for keys whose other values need other
// keys: a heartbeat needs the dialect's echo telegram.
var variantConfigs = map[string]string{
	"sender.heartbeat":         echoVariant + "sender.heartbeat = 13s\nsender.heartbeat.message = " + echoLine + "\n",
	"sender.heartbeat.message": echoVariant + "sender.heartbeat.message = " + echoLine + "\n",
}

const (
	echoVariant = "protocol.echo.field = filler\nprotocol.echo.value = PING\n"
	echoLine    = "REQ|000000000|20260101000000|ORG01|SV01|K|ping|PING"
)

// Variant returns the defaults (Default) with key set to a valid value
// other than its default, and false when none of a few candidate values
// loads (the TLS files must exist; protocol.* needs more than one line).
// It is meant for tests that hold a daemon's Reload to the table: a key is
// applied live (IsLive, LiveIn) exactly when changing it changes what
// Reload applies.
func Variant(key string) (*Config, bool) {
	k, ok := lookup(key)
	if !ok {
		return nil, false
	}
	def := Default()
	if file, ok := variantConfigs[key]; ok {
		c, err := load("", []byte(file), false)
		return c, err == nil && k.v.text(c) != k.v.text(def)
	}
	for _, v := range variants {
		c, err := load("", []byte(key+" = "+v+"\n"), false)
		if err == nil && k.v.text(c) != k.v.text(def) {
			return c, true
		}
	}
	return nil, false
}
