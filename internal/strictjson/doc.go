// Package strictjson decodes JSON configuration files strictly, the way
// Azure's own files are read: field names match exactly (case-sensitive),
// a field nobody reads is an error, a value of the wrong JSON type is an
// error, null is the same as an absent field, and every problem of a
// document is collected instead of stopping at the first.
//
// A Decoder collects the problems of one document; its Report function
// turns each Problem into the error the user sees, so that each file
// format keeps its own wording. An Object hands out its fields one by one
// (String, Bool, Object, Take, …) and, at Done, reports the fields nobody
// asked for.
package strictjson
