package msbimage

// PullOptionsJSON is what PullOptions sends through msb_pull_options_set_json, for the
// surface parity test.
func PullOptionsJSON(o PullOptions) (string, error) { return o.json() }
