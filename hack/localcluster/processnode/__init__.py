"""The process node: a tiny kubelet that runs the pods bound to one Node as local processes.

Why: docs/architecture.md "Tested on real parts" demands real pod processes in tests and the demo
(the trainer under
torchrun, two workers talking gloo over TCP) on a machine without a container runtime. The
process node registers Node ``local-0`` and keeps it Ready, watches the pods bound to it, runs
their containers as processes of this Python environment (the image is ignored), gives each pod
its own 127.x address and hosts-file DNS, reports kubelet-style status, and honours graceful
deletion. See docs/local-cluster.md, section "Process node".

Modules, bottom-up: ``expansion``, ``envvars``, ``hostsfile``, ``ipam``, ``podstatus``,
``logtail`` (pure); ``launcher``, ``killing``, ``volumes``, ``state``, ``kube`` (I/O helpers);
``nodeobject``, ``podworker``, ``daemon`` (threads); ``__main__`` (CLI).
"""
