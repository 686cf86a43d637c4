package k8s

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// rewatchDelay spaces watches of a starting Pod when the API server ends
// one (it does every few minutes).
const rewatchDelay = time.Second

// awaitReady returns Pod name once it is Ready with a Pod IP. It watches the
// Pod, reading it after each watch starts so no change is missed between
// the two, and watches again when the server ends a watch. The error of a
// Pod that failed, was deleted, or was not ready when ctx ended says what
// the Pod was doing (unschedulable, pulling its image, ...).
func (k *Orchestrator) awaitReady(ctx context.Context, name string) (*corev1.Pod, error) {
	var last *corev1.Pod
	for {
		pod, err := k.watchOnce(ctx, name, &last)
		if pod != nil || err != nil {
			return pod, err
		}
		select {
		case <-ctx.Done():
			return nil, notReady(name, last, ctx.Err())
		case <-time.After(rewatchDelay):
		}
	}
}

// watchOnce runs one watch of Pod name; it returns nil, nil when the watch
// ended before the Pod was ready, and keeps the Pod it saw last in last.
func (k *Orchestrator) watchOnce(ctx context.Context, name string, last **corev1.Pod) (*corev1.Pod, error) {
	pods := k.client.Pods(k.cfg.Namespace)
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		return nil, notReady(name, *last, err)
	}
	defer w.Stop()
	pod, err := pods.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("orchestrator: pod %s was deleted before it was ready", name)
	}
	if err != nil {
		return nil, notReady(name, *last, err)
	}
	for {
		*last = pod
		if ok, err := readiness(pod); ok || err != nil {
			return pod, err
		}
		select {
		case <-ctx.Done():
			return nil, notReady(name, pod, ctx.Err())
		case ev, open := <-w.ResultChan():
			if !open || ev.Type == watch.Error {
				return nil, nil // watch again
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod || p.Name != name {
				continue // the fake clientset ignores field selectors
			}
			if ev.Type == watch.Deleted {
				return nil, fmt.Errorf("orchestrator: pod %s was deleted before it was ready", name)
			}
			pod = p
		}
	}
}

// readiness reports whether pod is Ready with an IP, and an error when it
// has stopped for good.
func readiness(pod *corev1.Pod) (bool, error) {
	switch pod.Status.Phase {
	case corev1.PodFailed, corev1.PodSucceeded:
		return false, fmt.Errorf("orchestrator: pod %s stopped before it was ready (%s)", pod.Name, podState(pod))
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return pod.Status.PodIP != "", nil
		}
	}
	return false, nil
}

func notReady(name string, pod *corev1.Pod, err error) error {
	if pod == nil {
		return fmt.Errorf("orchestrator: pod %s not ready: %w", name, err)
	}
	return fmt.Errorf("orchestrator: pod %s not ready (%s): %w", name, podState(pod), err)
}

// podState describes what a Pod is doing: its phase, why it is not
// scheduled, and why its containers wait or ended.
func podState(pod *corev1.Pod) string {
	parts := []string{"phase " + string(pod.Status.Phase)}
	if pod.Status.Phase == "" {
		parts[0] = "phase unknown"
	}
	if pod.Status.Reason != "" || pod.Status.Message != "" {
		parts = append(parts, strings.TrimSpace(pod.Status.Reason+" "+pod.Status.Message))
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			parts = append(parts, "not scheduled: "+strings.TrimSpace(c.Reason+" "+c.Message))
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			parts = append(parts, fmt.Sprintf("container %s waiting: %s", cs.Name, strings.TrimSpace(w.Reason+" "+w.Message)))
		}
		if t := cs.State.Terminated; t != nil {
			parts = append(parts, fmt.Sprintf("container %s exited %d: %s", cs.Name, t.ExitCode, strings.TrimSpace(t.Reason+" "+t.Message)))
		}
	}
	return strings.Join(parts, "; ")
}
