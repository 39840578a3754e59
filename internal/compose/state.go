package compose

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/errdefs"
)

// keepJournals is how many rollout journals stay on record for `aideploy history`.
const keepJournals = 20

// ensureStateImage imports the empty image that lock and journal containers are made of.
func (p *Platform) ensureStateImage(ctx context.Context) error {
	if _, err := p.docker.ImageInspect(ctx, stateImage); err == nil {
		return nil
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("inspecting %s: %w", stateImage, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "aideploy-state", Mode: 0o644, Size: 0, Typeflag: tar.TypeReg})
	_ = tw.Close()
	rc, err := p.docker.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, stateImage,
		image.ImportOptions{Changes: []string{`LABEL ` + LabelManaged + `=true`}})
	if err != nil {
		return fmt.Errorf("importing %s: %w", stateImage, err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// createStateContainer creates (never starts) a container that only carries labels.
func (p *Platform) createStateContainer(ctx context.Context, name string, labels map[string]string) error {
	if err := p.ensureStateImage(ctx); err != nil {
		return err
	}
	_, err := p.docker.ContainerCreate(ctx, &container.Config{Image: stateImage, Cmd: []string{"/aideploy-state"}, Labels: labels},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, name)
	return err
}

// Lock creates the service's lock container; its name makes the lock exclusive.
// A lock whose holder's process is gone on this host is broken at once.
func (p *Platform) Lock(ctx context.Context, h rollout.Holder, force bool) error {
	h = h.Stamped()
	b, _ := json.Marshal(h)
	labels := p.baseLabels(kindLock)
	labels[LabelHolder] = string(b)
	for attempt := 0; ; attempt++ {
		err := p.createStateContainer(ctx, p.lockName(), labels)
		if err == nil {
			return nil
		}
		if !errdefs.IsConflict(err) || attempt >= 5 {
			return fmt.Errorf("creating lock container %s: %w", p.lockName(), err)
		}
		held, herr := p.holder(ctx)
		if herr != nil {
			return herr
		}
		if held == nil {
			// The name is taken but the container is not readable yet: another run is creating it.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		dead := held.Gone()
		if !force && !dead {
			return &rollout.LockedError{Service: p.opts.Service, Holder: *held}
		}
		why := "--force-unlock"
		if dead {
			why = "its process is gone"
		}
		p.logf("breaking the lock of %s (%s)", held, why)
		force = false // break at most once
		if err := p.docker.ContainerRemove(ctx, p.lockName(), container.RemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("breaking the lock: %w", err)
		}
	}
}

// Unlock removes the lock container if h still holds it.
func (p *Platform) Unlock(ctx context.Context, h rollout.Holder) error {
	held, err := p.holder(ctx)
	if err != nil || held == nil {
		return err
	}
	if held.PID != h.PID || held.Host != h.Host {
		return fmt.Errorf("the lock is now held by %s, not by this run", held)
	}
	if err := p.docker.ContainerRemove(ctx, p.lockName(), container.RemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("removing lock container: %w", err)
	}
	return nil
}

// Holder returns who holds the lock, or nil when nobody does.
func (p *Platform) holder(ctx context.Context) (*rollout.Holder, error) {
	c, err := p.docker.ContainerInspect(ctx, p.lockName())
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the lock: %w", err)
	}
	var h rollout.Holder
	if err := json.Unmarshal([]byte(c.Config.Labels[LabelHolder]), &h); err != nil {
		return nil, fmt.Errorf("reading the lock holder of %s: %w; remove it with --force-unlock", p.lockName(), err)
	}
	return &h, nil
}

// LockHolder returns who holds the service's lock and whether its process is gone; nil when free.
func (p *Platform) LockHolder(ctx context.Context) (*rollout.Holder, bool, error) {
	h, err := p.holder(ctx)
	if err != nil || h == nil {
		return nil, false, err
	}
	return h, h.Gone(), nil
}

// Record stores j as a new journal container; once j is finished, its earlier
// records and journals beyond the newest keepJournals are removed.
func (p *Platform) Record(ctx context.Context, j rollout.Journal) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	seq := time.Now().UnixNano()
	labels := p.baseLabels(kindJournal)
	labels[LabelJournal] = string(b)
	labels[LabelJournalID] = j.ID
	labels[LabelSeq] = strconv.FormatInt(seq, 10)
	name := fmt.Sprintf("%s-%s-aideploy-journal-%d", p.opts.Project, p.opts.Service, seq)
	if err := p.createStateContainer(ctx, name, labels); err != nil {
		return fmt.Errorf("writing journal %s: %w", j.ID, err)
	}
	if !j.Finished() {
		return nil // readers take the newest record; pruning waits for the end, to keep steps quick
	}
	recs, err := p.journalRecords(ctx)
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for _, r := range recs { // newest first
		stale := r.seq < seq && r.journal.ID == j.ID
		old := !ids[r.journal.ID] && len(ids) >= keepJournals
		ids[r.journal.ID] = true
		if stale || old {
			if err := p.docker.ContainerRemove(ctx, r.id, container.RemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("removing an old journal record: %w", err)
			}
		}
	}
	return nil
}

type journalRecord struct {
	id      string
	seq     int64
	journal rollout.Journal
}

func (p *Platform) journalRecords(ctx context.Context) ([]journalRecord, error) {
	cs, err := p.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: p.filter(kindJournal)})
	if err != nil {
		return nil, fmt.Errorf("listing rollout journals: %w", err)
	}
	var out []journalRecord
	for _, c := range cs {
		var j rollout.Journal
		if json.Unmarshal([]byte(c.Labels[LabelJournal]), &j) != nil {
			continue
		}
		seq, _ := strconv.ParseInt(c.Labels[LabelSeq], 10, 64)
		out = append(out, journalRecord{id: c.ID, seq: seq, journal: j})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].seq > out[b].seq })
	return out, nil
}

// journals returns the newest record of each journal, newest first.
func (p *Platform) journals(ctx context.Context) ([]rollout.Journal, error) {
	recs, err := p.journalRecords(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []rollout.Journal
	for _, r := range recs {
		if !seen[r.journal.ID] {
			seen[r.journal.ID] = true
			out = append(out, r.journal)
		}
	}
	return out, nil
}
