package gateway

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/aideploy/aideploy/internal/gateway/openai"
	"github.com/aideploy/aideploy/internal/validate"
)

// builtinRoutes are the routes the gateway forwards on defaults: the OpenAI
// API it reads and accounts (chat, completions, embeddings) and the model
// list clients ask first. Everything else a model server serves (vLLM's
// /metrics, /tokenize, LoRA admin routes, /v1/responses, whose bodies the
// token budgets do not read) stays closed until gateway.routes opens it.
var builtinRoutes = []Route{
	{Path: openai.RouteChat, Methods: []string{http.MethodPost}},
	{Path: openai.RouteCompletions, Methods: []string{http.MethodPost}},
	{Path: openai.RouteEmbeddings, Methods: []string{http.MethodPost}},
	{Path: "/v1/models", Methods: []string{http.MethodGet}},
	// Model ids may hold slashes (meta-llama/Llama-3.1-8B).
	{Path: "/v1/models/{id...}", Methods: []string{http.MethodGet}},
}

// routeTable is the allow-list: what may go upstream, matched with
// http.ServeMux's patterns so that no path matching of our own can be fooled.
type routeTable struct {
	byMethod *http.ServeMux // "METHOD /path" -> allowed
	byPath   *http.ServeMux // "/path" -> its methods, to tell 405 from 404
}

// allowed is the handler registered for an open route; it is never served,
// only found: its path is the route's label in metrics, limits and routing.
type allowed string

func (allowed) ServeHTTP(http.ResponseWriter, *http.Request) {}

// methodsOf is the handler registered for an open path: the Allow header of
// a 405.
type methodsOf string

func (methodsOf) ServeHTTP(http.ResponseWriter, *http.Request) {}

// effectiveRoutes merges the built-in routes with gateway.routes: an entry
// for a built-in path adds methods to it, one for another path opens it.
func effectiveRoutes(cfg []Route) []Route {
	// Every Methods slice is a copy: they are upper-cased and sorted in place
	// below, and builtinRoutes and the configuration are read by other
	// gateways at the same time (a reload builds one beside the running one).
	out := make([]Route, 0, len(builtinRoutes)+len(cfg))
	for _, b := range builtinRoutes {
		out = append(out, Route{Path: b.Path, Methods: slices.Clone(b.Methods)})
	}
	for _, r := range cfg {
		i := slices.IndexFunc(out, func(b Route) bool { return b.Path == r.Path })
		if i < 0 {
			out = append(out, Route{Path: r.Path, Methods: slices.Clone(r.Methods)})
			continue
		}
		out[i].Methods = append(out[i].Methods, r.Methods...)
	}
	for i := range out {
		ms := out[i].Methods
		for j := range ms {
			ms[j] = strings.ToUpper(ms[j])
		}
		slices.Sort(ms)
		out[i].Methods = slices.Compact(ms)
	}
	return out
}

// newRouteTable builds the allow-list; an error names the route that
// http.ServeMux refuses (a bad pattern, or two that overlap).
func newRouteTable(routes []Route) (t routeTable, err error) {
	t = routeTable{byMethod: http.NewServeMux(), byPath: http.NewServeMux()}
	for _, r := range routes {
		for _, m := range r.Methods {
			if err := register(t.byMethod, m+" "+r.Path, allowed(r.Path)); err != nil {
				return t, err
			}
		}
		if err := register(t.byPath, r.Path, methodsOf(strings.Join(allowHeader(r.Methods), ", "))); err != nil {
			return t, err
		}
	}
	return t, nil
}

// allowHeader lists methods as a 405's Allow header: GET brings HEAD, as
// http.ServeMux serves it.
func allowHeader(ms []string) []string {
	if slices.Contains(ms, http.MethodGet) && !slices.Contains(ms, http.MethodHead) {
		ms = append(slices.Clone(ms), http.MethodHead)
	}
	return ms
}

// register is ServeMux.Handle, which panics on a bad or conflicting
// pattern, as an error.
func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// match returns the route label of an allowed request, or the status to
// refuse it with: 404 for a path not on the list (or not in canonical form:
// "/v1/../admin" is never cleaned into something else), 405 with the Allow
// header for a listed path asked with another method.
func (t routeTable) match(r *http.Request) (route string, status int, allow string) {
	p := r.URL.Path
	if p == "" || p[0] != '/' || path.Clean(p) != p {
		return "", http.StatusNotFound, ""
	}
	if h, _ := t.byMethod.Handler(r); h != nil {
		if a, ok := h.(allowed); ok {
			return string(a), 0, ""
		}
	}
	if h, _ := t.byPath.Handler(r); h != nil {
		if m, ok := h.(methodsOf); ok {
			return "", http.StatusMethodNotAllowed, string(m)
		}
	}
	return "", http.StatusNotFound, ""
}

// refuseRoute answers a request the allow-list does not let through, in
// the OpenAI error shape clients already parse.
func refuseRoute(w http.ResponseWriter, r *http.Request, status int, allow string) {
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", allow)
		openai.WriteError(w, status, "invalid_request_error", "method_not_allowed",
			fmt.Sprintf("%s is not allowed on %s; use %s.", r.Method, r.URL.Path, allow))
		return
	}
	openai.WriteError(w, status, "invalid_request_error", "unknown_route",
		fmt.Sprintf("The gateway does not forward %s %s. An operator can open a route in aideploy.yaml under gateway.routes (path and methods).", r.Method, r.URL.Path))
}

// validateRoutes checks gateway.routes; pools are the configured pool names.
func validateRoutes(routes []Route, pools map[string]bool, errs validate.Errors) {
	builtin := map[string]bool{}
	for _, b := range builtinRoutes {
		builtin[b.Path] = true
	}
	for i, r := range routes {
		e := errs.At(fmt.Sprintf("routes[%d]", i))
		switch {
		case r.Path == openai.RouteOther:
			e.Addf("path", "(%q) no longer exists: only listed routes go upstream; list each path to open with its methods, e.g. {path: /tokenize, methods: [POST], pool: %s}", r.Path, orDefault(r.Pool))
			continue
		case r.Path == "" || r.Path[0] != '/':
			e.Addf("path", "(%q) must be a path starting with /, e.g. /tokenize or /v1/models/{id...}", r.Path)
			continue
		case !builtin[r.Path] && len(r.Methods) == 0:
			e.Addf("methods", "must list the methods to open %s with, e.g. [POST]", r.Path)
		}
		for j, m := range r.Methods {
			if m == "" || strings.ContainsAny(m, " /\t") {
				e.Addf(fmt.Sprintf("methods[%d]", j), "(%q) must be an HTTP method such as GET or POST", m)
			}
		}
		if r.Pool != "" && !pools[r.Pool] {
			e.Addf("pool", "(%q) is not a configured pool", r.Pool)
		}
	}
	if _, err := newRouteTable(effectiveRoutes(routes)); err != nil {
		errs.Addf("routes", "cannot be matched: %v", err)
	}
}

func orDefault(pool string) string {
	if pool == "" {
		return upstreamDefault
	}
	return pool
}
