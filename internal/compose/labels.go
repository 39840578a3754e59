package compose

import (
	"fmt"
	"strconv"

	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/docker/docker/api/types/filters"
)

// Labels aideploy puts on every container it creates; the state of a service lives in them.
const (
	LabelManaged    = "aideploy.managed"     // "true" on everything aideploy creates
	LabelProject    = "aideploy.project"     // compose project name
	LabelService    = "aideploy.service"     // service name
	LabelKind       = "aideploy.kind"        // replica, lock or journal
	LabelColor      = "aideploy.color"       // blue or green
	LabelRevision   = "aideploy.revision"    // rollout revision number
	LabelImage      = "aideploy.image"       // image reference as deployed
	LabelConfigHash = "aideploy.config-hash" // hash of the service definition
	LabelReplicas   = "aideploy.replicas"    // replicas of the revision
	LabelIndex      = "aideploy.index"       // replica index within the revision
	LabelHolder     = "aideploy.holder"      // lock holder, JSON
	LabelJournal    = "aideploy.journal"     // rollout journal, JSON
	LabelJournalID  = "aideploy.journal-id"  // journal ID, to find earlier records
	LabelSeq        = "aideploy.seq"         // record sequence, newest wins
	LabelPrewarm    = "aideploy.prewarm"     // on replicas a prewarm added: the revision's own replica count

	composeProject    = "com.docker.compose.project"
	composeService    = "com.docker.compose.service"
	composeNumber     = "com.docker.compose.container-number"
	composeOneoff     = "com.docker.compose.oneoff"
	composeConfigHash = "com.docker.compose.config-hash"
	composeVersion    = "com.docker.compose.version"
)

// Kinds of aideploy containers.
const (
	kindReplica = "replica"
	kindLock    = "lock"
	kindJournal = "journal"
)

// stateImage is an empty image the lock and journal containers are created from; they never run.
const stateImage = "aideploy-state:1"

func (p *Platform) baseLabels(kind string) map[string]string {
	return map[string]string{
		LabelManaged: "true",
		LabelProject: p.opts.Project,
		LabelService: p.opts.Service,
		LabelKind:    kind,
	}
}

func (p *Platform) filter(kind string, extra ...string) filters.Args {
	f := filters.NewArgs(
		filters.Arg("label", LabelProject+"="+p.opts.Project),
		filters.Arg("label", LabelService+"="+p.opts.Service),
	)
	if kind != "" {
		f.Add("label", LabelKind+"="+kind)
	}
	for _, e := range extra {
		f.Add("label", e)
	}
	return f
}

func (p *Platform) replicaName(d rollout.Deployment, i int) string {
	return fmt.Sprintf("%s-%s-%s-r%d-%d", p.opts.Project, p.opts.Service, d.Color, d.Revision, i+1)
}

func (p *Platform) lockName() string {
	return fmt.Sprintf("%s-%s-aideploy-lock", p.opts.Project, p.opts.Service)
}

func replicaLabels(d rollout.Deployment, i int) map[string]string {
	return map[string]string{
		LabelColor:      string(d.Color),
		LabelRevision:   strconv.Itoa(d.Revision),
		LabelImage:      d.Image,
		LabelConfigHash: d.ConfigHash,
		LabelReplicas:   strconv.Itoa(d.Replicas),
		LabelIndex:      strconv.Itoa(i),
	}
}

// deploymentOf reads a replica's deployment back from its labels.
func deploymentOf(labels map[string]string) (rollout.Deployment, int, bool) {
	rev, err1 := strconv.Atoi(labels[LabelRevision])
	n, err2 := strconv.Atoi(labels[LabelReplicas])
	idx, err3 := strconv.Atoi(labels[LabelIndex])
	if err1 != nil || err2 != nil || err3 != nil {
		return rollout.Deployment{}, 0, false
	}
	return rollout.Deployment{
		Color:      rollout.Color(labels[LabelColor]),
		Revision:   rev,
		Image:      labels[LabelImage],
		Replicas:   n,
		ConfigHash: labels[LabelConfigHash],
	}, idx, true
}
