#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A stand-in for kube-apiserver, for the per-node agent's tests.

It speaks the part of the Kubernetes API protocol a per-node agent uses, for
two namespaced resources: core/v1 pods and podtap.dev/v1alpha1
recordingsessions. There is no kube-apiserver in Debian; this follows the
documented protocol instead:

  LIST    GET collection; fieldSelector, labelSelector, limit + continue
  WATCH   GET collection ?watch=1; chunked JSON events, one per line;
          resourceVersion, allowWatchBookmarks, timeoutSeconds,
          sendInitialEvents; 410 Expired as an ERROR event
  CREATE  POST collection (JSON)
  GET     item, item/status
  REPLACE PUT item, item/status
  PATCH   merge-patch+json, json-patch+json (item, item/status);
          apply-patch+yaml (server-side apply) on item/status
  DELETE  item

State is in memory: one resourceVersion counter for everything, bumped by
every write, and the history of events the watches replay.

Test controls, no token needed:
  POST /standin/compact         watches from an older resourceVersion get 410
  POST /standin/close-watches   end every open watch stream now
  GET  /standin/requests        every /api and /apis request seen, in order
  GET  /standin/healthz         "ok"

Usage: kube_standin.py --port P [--host H] [--token T] [--portfile FILE]
                       [--bookmark-interval S] [--verbose]
"""
import argparse
import base64
import bisect
import copy
import json
import os
import random
import re
import select
import signal
import socket
import string
import sys
import threading
import time
import traceback
import uuid
from collections import namedtuple
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

FIRST_RV = 1000             # the resourceVersion before the first write
DEFAULT_WATCH_TIMEOUT = 1800.0
MAX_SNAPSHOTS = 32          # paged LISTs kept for their continue tokens
IDLE_POLL = 1.0             # how often an idle watch looks for a gone client

# ---------------------------------------------------------------------------
# Resources


class Resource:
    """One served resource: where it lives and how it behaves."""

    def __init__(self, name, group, version, kind, singular, fields,
                 status_strict, list_maps):
        self.name = name                    # plural, as in the path
        self.group = group                  # "" for the core group
        self.version = version
        self.kind = kind
        self.list_kind = kind + "List"
        self.singular = singular
        self.api_version = f"{group}/{version}" if group else version
        self.prefix = f"/apis/{group}/{version}" if group \
            else f"/api/{version}"
        # fieldSelector fields the real apiserver supports for it
        self.fields = fields
        # True: writes to the object ignore status, only /status changes it
        # (a CRD with the status subresource). The real apiserver does that
        # for pods too; the stand-in lets tests set pod status directly.
        self.status_strict = status_strict
        # status fields that are list-maps: field -> key, for server-side apply
        self.list_maps = list_maps

    def qualified(self):
        """The name in messages: "pods", "recordingsessions.podtap.dev"."""
        return f"{self.name}.{self.group}" if self.group else self.name


RESOURCES = {
    "pods": Resource(
        "pods", "", "v1", "Pod", "pod",
        fields={"metadata.name", "metadata.namespace", "spec.nodeName",
                "spec.restartPolicy", "spec.schedulerName",
                "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                "status.podIP", "status.nominatedNodeName"},
        status_strict=False, list_maps={}),
    "recordingsessions": Resource(
        "recordingsessions", "podtap.dev", "v1alpha1", "RecordingSession",
        "recordingsession",
        fields={"metadata.name", "metadata.namespace"},
        # as deploy/crd.yaml declares them (x-kubernetes-list-type: map)
        status_strict=True,
        list_maps={"perNode": "node", "conditions": "type"}),
}

# metadata fields the server owns: never taken from a request body
SERVER_META = ("uid", "resourceVersion", "creationTimestamp", "generation",
               "managedFields", "deletionTimestamp",
               "deletionGracePeriodSeconds", "selfLink")

# ---------------------------------------------------------------------------
# Errors: every failure is answered with a metav1 Status


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {},
              "status": "Failure", "message": self.message,
              "reason": self.reason, "code": self.code}
        if self.details:
            st["details"] = self.details
        return st


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def not_found(res, name):
    return ApiError(404, "NotFound", f'{res.qualified()} "{name}" not found',
                    {"name": name, "group": res.group, "kind": res.name})


def conflict(res, name, why):
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {res.qualified()} '
                    f'"{name}": {why}',
                    {"name": name, "group": res.group, "kind": res.name})


def expired(message):
    return ApiError(410, "Expired", message)


def unsupported_media(message):
    return ApiError(415, "UnsupportedMediaType", message)


def invalid(message):
    return ApiError(422, "Invalid", message)


# ---------------------------------------------------------------------------
# Selectors


def _split_outside_parens(text):
    """Split on commas that are not inside "( )" (label "in" sets)."""
    terms, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return [t.strip() for t in terms]


_SET_TERM = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")
_LABEL_KEY = re.compile(r"^[^\s,=!()]+$")


def parse_label_selector(text):
    """labelSelector -> predicate(labels). Supports k=v, k==v, k!=v, k, !k,
    k in (a,b), k notin (a,b)."""
    if not text or not text.strip():
        return lambda labels: True

    def key(k):
        k = k.strip()
        if not _LABEL_KEY.match(k):
            raise bad_request(f"unable to parse requirement: invalid label "
                              f"selector: {text!r}")
        return k

    preds = []
    for term in _split_outside_parens(text):
        set_term = _SET_TERM.match(term)
        if set_term:
            k, op = key(set_term[1]), set_term[2]
            vals = {v.strip() for v in set_term[3].split(",") if v.strip()}
            if op == "in":
                preds.append(lambda lb, k=k, vs=vals: lb.get(k) in vs)
            else:
                preds.append(lambda lb, k=k, vs=vals: lb.get(k) not in vs)
        elif "!=" in term:
            k, v = term.split("!=", 1)
            preds.append(lambda lb, k=key(k), v=v.strip(): lb.get(k) != v)
        elif "=" in term:
            k, v = term.split("==", 1) if "==" in term else term.split("=", 1)
            preds.append(lambda lb, k=key(k), v=v.strip(): lb.get(k) == v)
        elif term.startswith("!"):
            preds.append(lambda lb, k=key(term[1:]): k not in lb)
        else:
            preds.append(lambda lb, k=key(term): k in lb)
    return lambda labels: all(p(labels) for p in preds)


def field_value(obj, field):
    """The string a fieldSelector compares: "" when absent."""
    cur = obj
    for part in field.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text, res):
    """fieldSelector -> predicate(obj). Terms: f=v, f==v, f!=v."""
    if not text or not text.strip():
        return lambda obj: True
    preds = []
    for term in text.split(","):
        term = term.strip()
        for op in ("!=", "==", "="):
            if op in term:
                field, val = (s.strip() for s in term.split(op, 1))
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand "
                              f"'{term}'")
        if field not in res.fields:
            raise bad_request(f"field label not supported: {field}")
        if op == "!=":
            preds.append(lambda o, f=field, v=val: field_value(o, f) != v)
        else:
            preds.append(lambda o, f=field, v=val: field_value(o, f) == v)
    return lambda obj: all(p(obj) for p in preds)


def make_matcher(res, ns, query, name=None):
    """Which stored objects a LIST or WATCH request covers."""
    fsel = parse_field_selector(query.get("fieldSelector", ""), res)
    lsel = parse_label_selector(query.get("labelSelector", ""))

    def match(obj):
        meta = obj["metadata"]
        return ((ns is None or meta.get("namespace") == ns)
                and (name is None or meta.get("name") == name)
                and fsel(obj)
                and lsel(meta.get("labels") or {}))
    return match


# ---------------------------------------------------------------------------
# Patches


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch: returns the patched value."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, val in patch.items():
        if val is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), val)
    return out


def _pointer(path):
    """RFC 6901 JSON pointer -> list of reference tokens."""
    if path == "":
        return []
    if not isinstance(path, str) or not path.startswith("/"):
        raise invalid(f"json patch: bad path {path!r}")
    return [t.replace("~1", "/").replace("~0", "~")
            for t in path[1:].split("/")]


def _index(lst, tok, for_add=False):
    if for_add and tok == "-":
        return len(lst)
    if not tok.isdigit() or (len(tok) > 1 and tok[0] == "0"):
        raise invalid(f"json patch: bad array index {tok!r}")
    idx = int(tok)
    if idx > len(lst) or (idx == len(lst) and not for_add):
        raise invalid(f"json patch: array index {idx} out of range")
    return idx


def _walk(doc, toks):
    for tok in toks:
        if isinstance(doc, list):
            doc = doc[_index(doc, tok)]
        elif isinstance(doc, dict) and tok in doc:
            doc = doc[tok]
        else:
            raise invalid(f"json patch: path not found at {tok!r}")
    return doc


def _add(doc, toks, value):
    if not toks:
        return value
    parent = _walk(doc, toks[:-1])
    if isinstance(parent, list):
        parent.insert(_index(parent, toks[-1], for_add=True), value)
    elif isinstance(parent, dict):
        parent[toks[-1]] = value
    else:
        raise invalid("json patch: cannot add below a scalar")
    return doc


def _remove(doc, toks):
    if not toks:
        raise invalid("json patch: cannot remove the whole document")
    parent = _walk(doc, toks[:-1])
    if isinstance(parent, list):
        return parent.pop(_index(parent, toks[-1]))
    if isinstance(parent, dict) and toks[-1] in parent:
        return parent.pop(toks[-1])
    raise invalid(f"json patch: path not found at {toks[-1]!r}")


def json_patch(doc, ops):
    """RFC 6902 JSON patch applied to a copy of doc."""
    if not isinstance(ops, list):
        raise bad_request("json patch: the body must be a JSON array")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict):
            raise bad_request("json patch: operations must be objects")
        kind, path = op.get("op"), _pointer(op.get("path"))
        if kind in ("add", "replace", "test") and "value" not in op:
            raise invalid(f"json patch: {kind} needs a value")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            if path:
                _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from"))
            val = _remove(doc, src) if kind == "move" \
                else copy.deepcopy(_walk(doc, src))
            doc = _add(doc, path, val)
        elif kind == "test":
            if _walk(doc, path) != op["value"]:
                raise invalid(f"json patch: test failed at {op.get('path')}")
        else:
            raise invalid(f"json patch: unknown operation {kind!r}")
    return doc


# ---------------------------------------------------------------------------
# The store

# One write: the object as written (carrying the new resourceVersion) and,
# for MODIFIED and DELETED, the object before it.
Event = namedtuple("Event", "rv type res obj prev")


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def objkey(obj):
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


class Store:
    """Objects, the resourceVersion counter and the event history.

    Everything is guarded by one lock; `cond` (on that lock) wakes the
    watches after every write. Stored objects are never changed in place:
    a write stores a new dict, so events and snapshots can share them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.rv = FIRST_RV
        self.objects = {}       # (resource, namespace, name) -> object
        self.history = []       # Events, in resourceVersion order
        self.horizon = FIRST_RV  # watches from below this get 410
        self.owners = {}        # object key -> {apply-owned part: managers}
        self.snapshots = {}     # resourceVersion -> objects, for continue
        self.watches = {}       # open watch id -> its position (an RV)
        self.watch_gen = 0      # bumped by close-watches
        self.stopping = False
        self.requests = []      # the /api(s) request log

    # -- writing (all with the lock held) --

    def _commit(self, typ, res, obj, prev):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = (res.name,) + objkey(obj)
        if typ == "DELETED":
            self.objects.pop(key, None)
            self.owners.pop(key, None)
        else:
            self.objects[key] = obj
        self.history.append(Event(self.rv, typ, res.name, obj, prev))
        self.cond.notify_all()
        return obj

    def _get(self, res, ns, name):
        obj = self.objects.get((res.name, ns, name))
        if obj is None:
            raise not_found(res, name)
        return obj

    def create(self, res, ns, body):
        check_body_type(res, body)
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if meta.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not "
                              "match the namespace sent on the request")
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects "
                              "to be created")
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = meta["generateName"] + "".join(
                random.choice(string.ascii_lowercase + string.digits)
                for _ in range(5))
        check_name(name)
        obj = typed(res, copy.deepcopy(body))
        m = obj["metadata"]
        for f in SERVER_META:
            m.pop(f, None)
        m.update(name=name, namespace=ns, uid=str(uuid.uuid4()),
                 creationTimestamp=now_rfc3339(), generation=1)
        if res.status_strict:
            obj.pop("status", None)
        with self.lock:
            if (res.name, ns, name) in self.objects:
                raise ApiError(409, "AlreadyExists",
                               f'{res.qualified()} "{name}" already exists',
                               {"name": name, "group": res.group,
                                "kind": res.name})
            return self._commit("ADDED", res, obj, None)

    def update(self, res, ns, name, change, subresource=None):
        """Replace, patch or apply: change(current) -> the wanted object.

        It runs with the lock held, on the current object; the result is
        stored as the status subresource or the main resource would take
        it. A write that changes nothing stores nothing (no new RV, no
        event), as on the real server."""
        with self.lock:
            old = self._get(res, ns, name)
            want = change(copy.deepcopy(old))
            check_body_type(res, want)
            wmeta = want.get("metadata") or {}
            if not isinstance(wmeta, dict):
                raise bad_request("metadata must be an object")
            for f, have in (("name", name), ("namespace", ns)):
                if wmeta.get(f) not in (None, "", have):
                    raise bad_request(f"the {f} of the object "
                                      f"({wmeta.get(f)}) does not match the "
                                      f"{f} on the URL ({have})")
            if wmeta.get("resourceVersion") not in (
                    None, "", old["metadata"]["resourceVersion"]):
                raise conflict(res, name, "the object has been modified; "
                               "please apply your changes to the latest "
                               "version and try again")
            new = copy.deepcopy(old)
            if subresource == "status":
                set_or_drop(new, "status", want.get("status"))
            else:
                keep = {f: old["metadata"][f] for f in SERVER_META
                        if f in old["metadata"]}
                new = typed(res, copy.deepcopy(want))
                new["metadata"] = {k: v for k, v in wmeta.items()
                                   if k not in SERVER_META}
                new["metadata"].update(keep, name=name, namespace=ns)
                if res.status_strict:
                    set_or_drop(new, "status", old.get("status"))
                if new.get("spec") != old.get("spec"):
                    new["metadata"]["generation"] = \
                        old["metadata"].get("generation", 1) + 1
            if new == old:
                return old
            self._forget_owners((res.name, ns, name), res, new)
            return self._commit("MODIFIED", res, new, old)

    def delete(self, res, ns, name, preconditions):
        with self.lock:
            old = self._get(res, ns, name)
            pre = preconditions or {}
            if pre.get("uid") not in (None, old["metadata"]["uid"]):
                raise conflict(res, name, "Precondition failed: UID in "
                               f"precondition: {pre['uid']}, UID in object "
                               f"meta: {old['metadata']['uid']}")
            if pre.get("resourceVersion") not in (
                    None, old["metadata"]["resourceVersion"]):
                raise conflict(res, name, "the object has been modified; "
                               "please apply your changes to the latest "
                               "version and try again")
            return self._commit("DELETED", res, copy.deepcopy(old), old)

    # -- server-side apply of the status subresource --

    def apply_status(self, res, ns, name, body, manager, force):
        """Server-side apply of `status` by `manager`.

        Ownership is tracked per list-map entry (status.perNode by node,
        status.conditions by type) and per other top-level status field,
        as a set of managers: applying the value a part already has shares
        it, applying another value takes it (a conflict, unless force, when
        other managers own it). A part this manager no longer applies loses
        it as an owner, and is removed when no owner is left."""
        check_body_type(res, body, required=True)
        meta = body.get("metadata") or {}
        for f, have in (("name", name), ("namespace", ns)):
            if isinstance(meta, dict) and meta.get(f) not in (None, "", have):
                raise bad_request(f"the {f} of the object ({meta.get(f)}) "
                                  f"does not match the {f} on the URL "
                                  f"({have})")
        key = (res.name, ns, name)
        applied = body.get("status")
        if applied is None:
            applied = {}
        if not isinstance(applied, dict):
            raise bad_request(".status: expected an object")

        def change(cur):
            status = copy.deepcopy(cur.get("status") or {})
            owners = self.owners.get(key, {})
            new_owners = {part: set(who) for part, who in owners.items()}
            conflicts = []

            def take(part, stored, value):
                who = new_owners.setdefault(part, set())
                if stored == value:
                    who.add(manager)
                    return
                conflicts.extend((m, part) for m in sorted(who - {manager}))
                who.clear()
                who.add(manager)

            def release(part):
                """True when manager was the last owner of part."""
                who = new_owners.get(part)
                if who is None or manager not in who:
                    return False
                who.discard(manager)
                if who:
                    return False
                del new_owners[part]
                return True

            for field, kname in res.list_maps.items():
                entries = applied.get(field) or []
                by_key = list_map_index(status.get(field), kname)
                seen = set()
                if not isinstance(entries, list):
                    raise bad_request(f".status.{field}: expected a list")
                for e in entries:
                    if not isinstance(e, dict) or kname not in e:
                        raise bad_request(f".status.{field}: entries need "
                                          f"the key field {kname!r}")
                    k = json.dumps(e[kname], sort_keys=True)
                    if k in seen:
                        raise bad_request(f".status.{field}: duplicate "
                                          f"entries for key [{kname}={k}]")
                    seen.add(k)
                    take(("list", field, k), by_key.get(k), e)
                    by_key[k] = copy.deepcopy(e)
                for part in owners:
                    if part[:2] == ("list", field) and part[2] not in seen \
                            and release(part):
                        by_key.pop(part[2], None)
                set_or_drop(status, field,
                            [by_key[k] for k in sorted(by_key)] or None)
            for field, value in applied.items():
                if field not in res.list_maps:
                    take(("field", field), status.get(field), value)
                    status[field] = copy.deepcopy(value)
            for part in owners:
                if part[0] == "field" and part[1] not in applied \
                        and release(part):
                    status.pop(part[1], None)
            if conflicts and not force:
                where = ", ".join(f'conflict with "{who}": '
                                  f'{describe_part(p, res)}'
                                  for who, p in conflicts)
                raise ApiError(409, "Conflict",
                               f"Apply failed with {len(conflicts)} "
                               f"conflict{'s' if len(conflicts) > 1 else ''}: "
                               f"{where}")
            self.owners[key] = new_owners
            set_or_drop(cur, "status", status or None)
            return cur

        return self.update(res, ns, name, change, subresource="status")

    def _forget_owners(self, key, res, obj):
        """Drop apply ownership of status parts that are no longer there."""
        owners = self.owners.get(key)
        if not owners:
            return
        status = obj.get("status") or {}
        for part in list(owners):
            if part[0] == "field":
                gone = part[1] not in status
            else:
                gone = part[2] not in list_map_index(
                    status.get(part[1]), res.list_maps[part[1]])
            if gone:
                del owners[part]

    # -- reading --

    def list(self, res, ns, query):
        match = make_matcher(res, ns, query)
        limit = parse_int(query.get("limit", "0"), "limit")
        cont = query.get("continue")
        with self.lock:
            if cont:
                list_rv, start = decode_continue(cont)
                objects = self.snapshots.get(list_rv)
                if objects is None or list_rv < self.horizon:
                    raise expired("The provided continue parameter is too "
                                  "old to display a consistent list result. "
                                  "You can start a new list without the "
                                  "continue parameter.")
            else:
                if query.get("resourceVersionMatch") == "Exact":
                    want = parse_int(query.get("resourceVersion", ""),
                                     "resourceVersion")
                    if want < self.horizon:
                        raise expired(f"too old resource version: {want} "
                                      f"({self.horizon})")
                list_rv, start, objects = self.rv, None, self.objects
            items = sorted((o for (r, _, _), o in objects.items()
                            if r == res.name and match(o)), key=objkey)
            if start is not None:
                items = [o for o in items if objkey(o) > start]
            meta = {"resourceVersion": str(list_rv)}
            if limit > 0 and len(items) > limit:
                rest = len(items) - limit
                items = items[:limit]
                if not cont:
                    self._keep_snapshot(list_rv)
                meta["continue"] = encode_continue(list_rv, objkey(items[-1]))
                if not query.get("fieldSelector") and \
                        not query.get("labelSelector"):
                    meta["remainingItemCount"] = rest
        return {"kind": res.list_kind, "apiVersion": res.api_version,
                "metadata": meta, "items": items}

    def _keep_snapshot(self, rv):
        if rv not in self.snapshots:
            self.snapshots[rv] = dict(self.objects)
            for old in sorted(self.snapshots)[:-MAX_SNAPSHOTS]:
                del self.snapshots[old]

    def get(self, res, ns, name):
        with self.lock:
            return self._get(res, ns, name)

    def events_after(self, rv):
        """History events newer than rv (lock held)."""
        at = bisect.bisect_right(self.history, rv, key=lambda e: e.rv)
        return self.history[at:]

    # -- controls --

    def compact(self):
        """Forget history up to now; older watches will get 410.

        Events an open watch has yet to send are kept for it: compaction
        on the real server does not cut a running watch short either."""
        with self.lock:
            self.horizon = self.rv
            keep_from = min([self.horizon] + list(self.watches.values()))
            self.history = self.events_after(keep_from)
            self.snapshots = {}
            return self.rv

    def close_watches(self):
        with self.lock:
            self.watch_gen += 1
            self.cond.notify_all()
            return len(self.watches)

    def stop(self):
        with self.lock:
            self.stopping = True
            self.cond.notify_all()


def check_body_type(res, body, required=False):
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    for field, want in (("kind", res.kind), ("apiVersion", res.api_version)):
        have = body.get(field)
        if have in (None, "") and required:
            raise bad_request(f"{field} must be set")
        if have not in (None, "", want):
            raise bad_request(f"{field} {have!r} does not match the "
                              f"resource ({want})")


def typed(res, obj):
    """obj with the resource's kind and apiVersion, first."""
    out = {"kind": res.kind, "apiVersion": res.api_version}
    out.update((k, v) for k, v in obj.items() if k not in out)
    return out


def check_name(name):
    if not name:
        raise invalid("metadata.name: Required value: name or generateName "
                      "is required")
    if "/" in name or "%" in name or name in (".", "..") or len(name) > 253:
        raise invalid(f"metadata.name: Invalid value: {name!r}")


def set_or_drop(obj, field, value):
    if value is None:
        obj.pop(field, None)
    else:
        obj[field] = value


def list_map_index(entries, kname):
    """A list-map as {json key: entry}; entries without the key are lost."""
    out = {}
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict) and kname in e:
            out[json.dumps(e[kname], sort_keys=True)] = e
    return out


def describe_part(part, res):
    if part[0] == "field":
        return f".status.{part[1]}"
    return f".status.{part[1]}[{res.list_maps[part[1]]}={part[2]}]"


def parse_int(text, what):
    try:
        return int(text or "0")
    except ValueError:
        raise bad_request(f"invalid {what}: {text!r}") from None


def encode_continue(rv, start):
    token = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(start)})
    return base64.urlsafe_b64encode(token.encode()).decode()


def decode_continue(token):
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), tuple(data["start"])
    except (ValueError, KeyError, TypeError):
        raise bad_request("continue key is not valid") from None


def parse_bool(text):
    return text in ("1", "t", "T", "true", "TRUE", "True")


# ---------------------------------------------------------------------------
# HTTP


class BodyError(Exception):
    pass


def read_body(rfile, headers):
    """The request body, by Content-Length or chunked."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        parts = []
        while True:
            line = rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BodyError("bad chunk size") from None
            if size == 0:
                while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass            # trailers
                return b"".join(parts)
            data = rfile.read(size)
            if len(data) < size:
                raise BodyError("body cut short")
            parts.append(data)
            rfile.readline(16)      # the CRLF after the chunk
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        raise BodyError("bad Content-Length") from None
    if length < 0:
        raise BodyError("bad Content-Length")
    data = rfile.read(length) if length else b""
    if len(data) < length:
        raise BodyError("body cut short")
    return data


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-standin/1"
    # headers and body go out in separate writes: without TCP_NODELAY a
    # keep-alive client waits out its delayed ACK on every answer
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("kube-standin: %s - %s\n"
                             % (self.address_string(), fmt % args))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = \
        lambda self: self.dispatch()

    # -- responses --

    def send_json(self, code, obj):
        data = dumps(obj)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_text(self, code, text):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # -- routing --

    def dispatch(self):
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[0] for k, v in
                 parse_qs(url.query, keep_blank_values=True).items()}
        self.ctype = self.headers.get("Content-Type", "").split(";")[0] \
            .strip().lower()
        store = self.server.store
        try:
            body = read_body(self.rfile, self.headers)
        except BodyError as e:
            self.close_connection = True
            self.send_json(400, bad_request(str(e)).status())
            return
        try:
            if path.startswith("/standin/"):
                self.control(path)
                return
            is_api = path in ("/api", "/apis") or \
                path.startswith(("/api/", "/apis/"))
            if is_api:
                with store.lock:
                    store.requests.append({
                        "method": self.command, "path": path, "query": query,
                        "contentType": self.ctype,
                        "watch": parse_bool(query.get("watch", ""))})
                token = self.server.token
                if token and self.headers.get("Authorization") != \
                        f"Bearer {token}":
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                self.api(path, query, body)
            elif path == "/version" and self.command == "GET":
                self.send_json(200, {"major": "1", "minor": "31",
                                     "gitVersion": "v1.31.0-podtap-standin",
                                     "platform": "linux/amd64"})
            else:
                raise ApiError(404, "NotFound",
                               "the server could not find the requested "
                               "resource")
        except ApiError as e:
            self.send_json(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            self.send_json(500, ApiError(500, "InternalError",
                                         "stand-in internal error").status())

    def control(self, path):
        store, method = self.server.store, self.command
        if path == "/standin/healthz" and method == "GET":
            self.send_text(200, "ok")
        elif path == "/standin/requests" and method == "GET":
            with store.lock:
                self.send_json(200, list(store.requests))
        elif path == "/standin/compact" and method == "POST":
            self.send_json(200, {"resourceVersion": str(store.compact())})
        elif path == "/standin/close-watches" and method == "POST":
            self.send_json(200, {"closed": store.close_watches()})
        else:
            raise ApiError(404, "NotFound", f"no stand-in control {path}")

    def api(self, path, query, body):
        for res in RESOURCES.values():
            if path == res.prefix or path.startswith(res.prefix + "/"):
                break
        else:
            return self.discovery(path)
        rest = path[len(res.prefix):].split("/")[1:]
        rest = [unquote(p) for p in rest]
        if not rest or "" in rest:
            return self.discovery(path)
        # [res] | namespaces/NS/res [/NAME [/status]]
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        elif len(rest) == 1:
            ns = None
        else:
            return self.discovery(path)
        if rest[0] != res.name:
            res = RESOURCES.get(rest[0])
            if res is None or not path.startswith(res.prefix + "/"):
                return self.discovery(path)
        if len(rest) == 1:
            return self.collection(res, ns, query, body)
        if ns is None or len(rest) > 3 or (len(rest) == 3 and
                                          rest[2] != "status"):
            return self.discovery(path)
        return self.item(res, ns, rest[1], rest[2] if len(rest) == 3
                         else None, query, body)

    def discovery(self, path):
        """The discovery documents; 404 for any other path."""
        if self.command != "GET":
            raise ApiError(404, "NotFound", "the server could not find the "
                           "requested resource")
        groups = {}
        for r in RESOURCES.values():
            groups.setdefault((r.group, r.version), []).append(r)
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions",
                                        "versions": ["v1"]})
        if path == "/apis":
            return self.send_json(200, {
                "kind": "APIGroupList", "apiVersion": "v1",
                "groups": [{"name": g,
                            "versions": [{"groupVersion": f"{g}/{v}",
                                          "version": v}],
                            "preferredVersion": {"groupVersion": f"{g}/{v}",
                                                 "version": v}}
                           for (g, v) in groups if g]})
        for (g, v), rs in groups.items():
            if path == rs[0].prefix:
                verbs = ["create", "delete", "get", "list", "patch",
                         "update", "watch"]
                out = []
                for r in rs:
                    out.append({"name": r.name, "singularName": r.singular,
                                "namespaced": True, "kind": r.kind,
                                "verbs": verbs})
                    out.append({"name": r.name + "/status",
                                "singularName": "", "namespaced": True,
                                "kind": r.kind,
                                "verbs": ["get", "patch", "update"]})
                return self.send_json(200, {
                    "kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": r.api_version, "resources": out})
        raise ApiError(404, "NotFound", "the server could not find the "
                       "requested resource")

    # -- verbs --

    def collection(self, res, ns, query, body):
        store = self.server.store
        if self.command == "GET":
            if parse_bool(query.get("watch", "")):
                return self.watch(res, ns, query)
            return self.send_json(200, store.list(res, ns, query))
        if self.command == "POST" and ns is not None:
            obj = store.create(res, ns, self.json_body(body))
            return self.send_json(201, obj)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow "
                       "this method on the requested resource")

    def item(self, res, ns, name, sub, query, body):
        store, method = self.server.store, self.command
        if method == "GET":
            if parse_bool(query.get("watch", "")) and sub is None:
                return self.watch(res, ns, query, name=name)
            return self.send_json(200, store.get(res, ns, name))
        if method == "PUT":
            want = self.json_body(body)
            obj = store.update(res, ns, name, lambda cur: want, sub)
            return self.send_json(200, obj)
        if method == "PATCH":
            return self.patch(res, ns, name, sub, query, body)
        if method == "DELETE" and sub is None:
            opts = json_or_none(body) or {}
            obj = store.delete(res, ns, name, opts.get("preconditions")
                               if isinstance(opts, dict) else None)
            return self.send_json(200, obj)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow "
                       "this method on the requested resource")

    def patch(self, res, ns, name, sub, query, body):
        store = self.server.store
        if self.ctype == "application/apply-patch+yaml":
            if sub != "status":
                raise unsupported_media(
                    "the stand-in supports server-side apply only on the "
                    "status subresource")
            try:
                applied = json.loads(body)
            except ValueError:
                raise unsupported_media(
                    "the stand-in supports only JSON-encoded apply bodies "
                    "(JSON is YAML); this one does not parse as JSON") \
                    from None
            manager = query.get("fieldManager", "")
            if not manager:
                raise bad_request('PatchOptions.meta.k8s.io "" is invalid: '
                                  'fieldManager: Required value: is required '
                                  'for apply patch')
            obj = store.apply_status(res, ns, name, applied, manager,
                                     parse_bool(query.get("force", "")))
        elif self.ctype == "application/merge-patch+json":
            patch = self.json_body(body, dict_only=False)
            obj = store.update(res, ns, name,
                               lambda cur: merge_patch(cur, patch), sub)
        elif self.ctype == "application/json-patch+json":
            ops = self.json_body(body, dict_only=False)
            obj = store.update(res, ns, name,
                               lambda cur: json_patch(cur, ops), sub)
        else:
            raise unsupported_media(
                f"the body of the request was in an unknown format - "
                f"accepted media types include: application/json-patch+json, "
                f"application/merge-patch+json, application/apply-patch+yaml "
                f"(strategic merge patch is not in the stand-in)")
        self.send_json(200, obj)

    def json_body(self, body, dict_only=True):
        if self.command in ("POST", "PUT") and self.ctype not in (
                "application/json", "application/yaml", ""):
            raise unsupported_media(
                f"the body of the request was in an unknown format - "
                f"accepted media types include: application/json, "
                f"application/yaml")
        try:
            obj = json.loads(body)
        except ValueError:
            raise bad_request("the body does not parse as JSON") from None
        if dict_only and not isinstance(obj, dict):
            raise bad_request("the body must be a JSON object")
        return obj

    # -- watch --

    def watch(self, res, ns, query, name=None):
        """Stream events as chunked JSON lines until timeout, close-watches,
        shutdown or the client going away."""
        store = self.server.store
        match = make_matcher(res, ns, query, name)
        bookmarks = parse_bool(query.get("allowWatchBookmarks", ""))
        try:
            timeout = float(query.get("timeoutSeconds") or
                            DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise bad_request("invalid timeoutSeconds") from None
        deadline = time.monotonic() + timeout
        rv_text = query.get("resourceVersion", "")
        from_now = rv_text in ("", "0")
        initial = query.get("sendInitialEvents")
        if initial is None:
            send_initial = from_now
        else:
            send_initial = parse_bool(initial)
            if send_initial and (not bookmarks or query.get(
                    "resourceVersionMatch") != "NotOlderThan"):
                raise ApiError(422, "Invalid", "sendInitialEvents needs "
                               "allowWatchBookmarks=true and "
                               "resourceVersionMatch=NotOlderThan")
        start = None if from_now else parse_int(rv_text, "resourceVersion")
        wid = object()
        with store.lock:
            gen = store.watch_gen
            too_old = start is not None and start < store.horizon
            if not too_old:
                cursor = store.rv if from_now or send_initial else start
                first = sorted((o for (r, _, _), o in store.objects.items()
                                if r == res.name and match(o)), key=objkey) \
                    if send_initial else []
                store.watches[wid] = cursor
            horizon = store.horizon

        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        try:
            if too_old:
                self.write_chunk(dumps({"type": "ERROR", "object": expired(
                    f"too old resource version: {start} ({horizon})")
                    .status()}))
            else:
                self.stream(res, match, wid, gen, cursor, first, bookmarks,
                            initial is not None and send_initial, deadline)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            with store.lock:
                store.watches.pop(wid, None)

    def stream(self, res, match, wid, gen, cursor, first, bookmarks,
               initial_end, deadline):
        store = self.server.store
        interval = self.server.bookmark_interval

        def bookmark(rv, annotations=None):
            meta = {"resourceVersion": str(rv)}
            if annotations:
                meta["annotations"] = annotations
            return {"type": "BOOKMARK", "object": {
                "kind": res.kind, "apiVersion": res.api_version,
                "metadata": meta}}

        for obj in first:
            self.write_chunk(dumps({"type": "ADDED", "object": obj}))
        if initial_end:
            self.write_chunk(dumps(bookmark(
                cursor, {"k8s.io/initial-events-end": "true"})))
        last_sent = time.monotonic()
        while True:
            # Wait, lock held, for events, a bookmark due or the end.
            with store.lock:
                while True:
                    if store.stopping or store.watch_gen != gen:
                        return
                    events = store.events_after(cursor)
                    now = time.monotonic()
                    if events or now >= deadline:
                        break
                    if bookmarks and now - last_sent >= interval:
                        break
                    wait = min(deadline - now, IDLE_POLL)
                    if bookmarks:
                        wait = min(wait, last_sent + interval - now)
                    if not store.cond.wait(max(wait, 0.001)) and \
                            self.peer_gone():
                        return
                # Every write up to store.rv is in `events` now.
                cursor = max(cursor, store.rv)
                store.watches[wid] = cursor
            out = [ev for ev in (self.convert(e, res, match) for e in events)
                   if ev]
            if not out and bookmarks and now - last_sent >= interval:
                out = [bookmark(cursor)]
            for ev in out:
                self.write_chunk(dumps(ev))
            if out:
                last_sent = time.monotonic()
            if not events and now >= deadline:
                return

    @staticmethod
    def convert(ev, res, match):
        """A history event as this watch sees it, or None. An object that
        stops matching the selectors is DELETED (its previous state with
        the new resourceVersion); one that starts matching is ADDED."""
        if ev.res != res.name:
            return None
        now = ev.type != "DELETED" and match(ev.obj)
        before = ev.prev is not None and match(ev.prev)
        if now and not before:
            return {"type": "ADDED", "object": ev.obj}
        if now and before:
            return {"type": "MODIFIED", "object": ev.obj}
        if before:
            obj = copy.deepcopy(ev.prev)
            obj["metadata"]["resourceVersion"] = str(ev.rv)
            return {"type": "DELETED", "object": obj}
        return None

    def peer_gone(self):
        """True when the client has closed its end of the connection."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and \
                self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


def json_or_none(body):
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        raise bad_request("the body does not parse as JSON") from None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def write_portfile(path, port):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


class Stop(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True, help="0 = pick one")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--token", help="require Authorization: Bearer TOKEN")
    ap.add_argument("--portfile", help="write the bound port here")
    ap.add_argument("--bookmark-interval", type=float, default=1.0,
                    metavar="SECONDS")
    ap.add_argument("--verbose", action="store_true",
                    help="log requests to stderr")
    args = ap.parse_args()

    httpd = Server((args.host, args.port), Handler)
    httpd.store = Store()
    httpd.token = args.token
    httpd.verbose = args.verbose
    httpd.bookmark_interval = max(args.bookmark_interval, 0.01)

    def on_signal(signum, frame):
        raise Stop()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.portfile:
        write_portfile(args.portfile, httpd.server_address[1])
    try:
        httpd.serve_forever(poll_interval=0.2)
    except Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        httpd.store.stop()
        httpd.server_close()


if __name__ == "__main__":
    main()
