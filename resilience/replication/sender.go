package replication

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// abortTimeout bounds the abort sent after a failed transfer.
const abortTimeout = 10 * time.Second

// fileError is a problem with one file on this node (it changed since its
// manifest entry, or while being sent): the transfer stops without
// committing, so that the receiver applies none of it.
type fileError struct{ error }

// runFiles runs a files job: manifest, begin, manifest pages, uploads of
// what the peer needs, commit. Without a change it sends only the
// manifest.
func (r *Runner) runFiles(ctx context.Context, js *jobState, res *Result) error {
	job := &js.job
	r.progress(js, func(p *api.ReplicationProgress) { p.Phase = "scanning" })
	tot := &totals{lim: job.Limits}
	var skipped []string
	var trees []*tree
	defer func() {
		for _, t := range trees {
			t.dir.Close()
		}
	}()
	for _, root := range job.Roots {
		t, err := buildTree(root, js.caches[root.Name], tot, &skipped)
		if err != nil {
			return err
		}
		trees = append(trees, t)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	res.Files, res.Skipped = tot.files, len(skipped)
	for i, s := range skipped {
		if i == 10 {
			js.log.Warn("more paths not replicated", "count", len(skipped)-i)
			break
		}
		js.log.Warn("not replicated", "path", s)
	}

	r.progress(js, func(p *api.ReplicationProgress) { p.Phase, p.Files, p.Bytes = "manifest", tot.files, tot.bytes })
	var begin beginResponse
	roots := make([]string, len(trees))
	for i, t := range trees {
		roots[i] = t.root.Name
	}
	err := r.client.postJSON(ctx, PathBegin, nil, beginRequest{Job: job.Name, Roots: roots, Delete: job.Delete,
		Files: tot.files, Bytes: tot.bytes}, &begin, &res.BytesSent)
	if err != nil {
		return fmt.Errorf("begin the transfer: %w", err)
	}
	maxReq := r.maxReq
	if begin.MaxRequestBytes > 0 && begin.MaxRequestBytes < maxReq {
		maxReq = max(begin.MaxRequestBytes, MinMaxRequestBytes)
	}
	q := url.Values{"session": {begin.Session}}
	committed := false
	defer func() {
		if committed {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if err := r.client.do(actx, http.MethodPost, PathAbort, q, nil, nil, &res.BytesSent); err != nil && peerCode(err) != http.StatusNotFound {
			js.log.Warn("cannot abort the transfer; the peer drops it when idle", "err", err)
		}
	}()

	type want struct {
		t *tree
		e *entry
	}
	var wants []want
	changed := 0
	for _, t := range trees {
		pages, err := manifestPages(t.root.Name, t.entries, maxReq)
		if err != nil {
			return err
		}
		for _, body := range pages {
			var mr manifestResponse
			if err := r.client.do(ctx, http.MethodPost, PathManifest, q, body, &mr, &res.BytesSent); err != nil {
				return fmt.Errorf("send the manifest of root %s: %w", t.root.Name, err)
			}
			changed += mr.Changed
			for _, p := range mr.Need {
				e := t.files[p]
				if e == nil {
					return fmt.Errorf("the peer asked for %s/%q, which is no file of the manifest", t.root.Name, p)
				}
				wants = append(wants, want{t, e})
			}
		}
	}

	r.progress(js, func(p *api.ReplicationProgress) {
		p.Phase, p.ToSend, p.BytesSent = "uploading", len(wants), res.BytesSent
	})
	buf := make([]byte, maxReq)
	for i, w := range wants {
		if r.beforeUpload != nil {
			r.beforeUpload(w.t.root.Name, w.e.Path)
		}
		err := r.upload(ctx, w.t, w.e, q, buf, &res.BytesSent)
		var fe fileError
		if errors.As(err, &fe) {
			// The receiver applies a transfer whole or not at all: the
			// files after this one would be sent for nothing.
			return fmt.Errorf("%v: file %d of %d, the transfer stops and nothing of it is applied (it goes again next run)",
				fe.error, i+1, len(wants))
		}
		if err != nil {
			return err
		}
		res.FilesSent++
		r.progress(js, func(p *api.ReplicationProgress) { p.Sent, p.BytesSent = res.FilesSent, res.BytesSent })
	}
	r.progress(js, func(p *api.ReplicationProgress) { p.Phase = "committing" })
	var cr commitResponse
	if err := r.client.do(ctx, http.MethodPost, PathCommit, q, nil, &cr, &res.BytesSent); err != nil {
		return fmt.Errorf("commit the transfer: %w", err)
	}
	committed = true
	res.FilesChanged, res.FilesDeleted = cr.Changed, cr.Deleted
	return nil
}

// progress updates the progress of js's run under way, as Status shows it.
func (r *Runner) progress(js *jobState, update func(*api.ReplicationProgress)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if js.progress == nil {
		js.progress = &api.ReplicationProgress{}
	}
	update(js.progress)
}

// manifestPages encodes entries as manifest requests of at most maxReq
// bytes each. A root without entries still gets one (empty) page, so that
// the receiver knows it is empty.
func manifestPages(root string, entries []entry, maxReq int) ([][]byte, error) {
	name, err := json.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("encode the manifest: %w", err)
	}
	head := append(append([]byte(`{"root":`), name...), `,"entries":[`...)
	const tail = "]}"
	var pages [][]byte
	var cur bytes.Buffer
	n := 0
	flush := func() {
		cur.WriteString(tail)
		pages = append(pages, bytes.Clone(cur.Bytes()))
		cur.Reset()
		n = 0
	}
	var enc bytes.Buffer
	je := json.NewEncoder(&enc)
	je.SetEscapeHTML(false)
	cur.Write(head)
	for i := range entries {
		enc.Reset()
		if err := je.Encode(&entries[i]); err != nil {
			return nil, fmt.Errorf("encode the manifest: %w", err)
		}
		item := bytes.TrimRight(enc.Bytes(), "\n")
		if len(head)+len(item)+len(tail) > maxReq {
			return nil, fmt.Errorf("root %s: the manifest entry of %q does not fit in one request of %d bytes", root, entries[i].Path, maxReq)
		}
		if cur.Len()+1+len(item)+len(tail) > maxReq {
			flush()
			cur.Write(head)
		}
		if n > 0 {
			cur.WriteByte(',')
		}
		cur.Write(item)
		n++
	}
	flush()
	return pages, nil
}

// upload sends one file in chunks of len(buf), hashing what it reads: a
// file that changed since its manifest entry is not sent (fileError), and
// the peer checks the hash again before it replaces its copy.
func (r *Runner) upload(ctx context.Context, t *tree, e *entry, session url.Values, buf []byte, sent *int64) error {
	name := t.root.Name + "/" + e.Path
	f, err := t.dir.Open(e.Path)
	if err != nil {
		return fileError{fmt.Errorf("%s: %w", name, err)}
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() != e.Size {
		return fileError{fmt.Errorf("%s changed since the manifest", name)}
	}
	h := sha256.New()
	var offset int64
	for {
		n, err := io.ReadFull(f, buf[:min(int64(len(buf)), e.Size-offset)])
		if err != nil {
			return fileError{fmt.Errorf("%s: read: %w", name, err)}
		}
		h.Write(buf[:n])
		last := offset+int64(n) == e.Size
		if last && hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
			return fileError{fmt.Errorf("%s changed while being sent", name)}
		}
		q := url.Values{"session": session["session"], "root": {t.root.Name}, "path": {e.Path},
			"offset": {strconv.FormatInt(offset, 10)}}
		var cr chunkResponse
		err = r.client.do(ctx, http.MethodPut, PathChunk, q, buf[:n], &cr, sent)
		if err != nil {
			return fmt.Errorf("send %s: %w", name, err)
		}
		offset += int64(n)
		if last {
			if !cr.Done {
				return fmt.Errorf("send %s: the peer did not complete the file", name)
			}
			return nil
		}
	}
}
