package extract

// LocalFile is a file of a manifest as Export names it on disk.
type LocalFile struct {
	File
	// URL is the manifest entry's url; its last path element is the name
	// other clients give the file.
	URL string
	// Count is the number of resources the manifest declares, when it does.
	Count *int64
}

// LocalFiles lists every file of m with the name Export gives it in its
// output directory (Type.NNN.ndjson, error.Type.NNN.ndjson,
// deleted.Type.NNN.ndjson), its kind, type and declared count, so that
// files already on disk can be matched to their manifest entries.
func LocalFiles(m *Manifest) []LocalFile {
	jobs := plan(m)
	out := make([]LocalFile, len(jobs))
	for i, j := range jobs {
		out[i] = LocalFile{File: File{Kind: j.kind, Type: j.entry.Type, Name: j.name}, URL: j.entry.URL, Count: j.entry.Count}
	}
	return out
}
