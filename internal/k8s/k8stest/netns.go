package k8stest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// envInNetNS marks the test binary re-run inside its own network namespace.
const envInNetNS = "AIDEPLOY_K8STEST_NETNS"

// NetNSAddrs are put on the loopback of the namespace, so that what the API
// server's proxy dials stays inside it: kwok's node address (hack/cluster.sh
// --node-ip, hostNetwork pods get it) and its pod range (--cidr), on which a
// test's fake model listens for the pods it plays.
var NetNSAddrs = []string{"10.1.0.1/24", "10.2.0.1/16"}

// InNetNS reports whether this test binary runs in the network namespace
// Main made for it.
func InNetNS() bool { return os.Getenv(envInNetNS) == "1" }

// reexecInNetNS runs this test binary again with the same arguments in a new
// network namespace that has only a loopback carrying NetNSAddrs, and returns
// its exit code. Everything the tests start (the control plane, fake models)
// lives there, so no test traffic reaches another host whatever addresses the
// simulated pods have.
func reexecInNetNS() int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "k8stest: finding the test binary to re-run in its network namespace: %v\n", err)
		return 1
	}
	script := "ip link set lo up"
	for _, a := range NetNSAddrs {
		script += " && ip addr add " + a + " dev lo"
	}
	script += ` && exec "$0" "$@"`
	args := []string{"--net"}
	if os.Geteuid() != 0 {
		args = append(args, "--map-root-user")
	}
	args = append(append(args, "--", "sh", "-c", script, self), os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInNetNS+"=1")
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode()
	case err != nil:
		fmt.Fprintf(os.Stderr, "k8stest: entering a network namespace of its own (unshare --net): %v; "+
			"the Kubernetes integration tests need util-linux unshare, iproute2 ip, and the right to create "+
			"a network namespace (root, or unprivileged user namespaces)\n", err)
		return 1
	}
	return 0
}
