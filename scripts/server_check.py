#!/usr/bin/env python3
"""Asks a real llama-server the survey items of a GGUF exported by `culturetune export --gguf`.

Starts SERVER on 127.0.0.1 on a free port with the exported file (its own chat template,
--jinja), reads one request per line of REQUESTS ({"prompt": text, "messages": [...]}) and
prints one JSON line per request on stdout:

  {"completion": [p1..p5], "chat": [p1..p5], "chat_prompt": text}

the probabilities of the answer digits "1".."5" at the next token, renormalised over the five,
from POST /completion (the prompt text, which holds the carried tokens as text, n_probs) and
from POST /v1/chat/completions (the messages rendered by the file's chat template, logprobs),
and the text the template renders (POST /apply-template). The server is stopped in every
outcome (and dies with this process: PR_SET_PDEATHSIG). Used by tests/llama_server.rs.
"""
import argparse
import ctypes
import json
import math
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

TOP = 100  # top tokens asked for: the five digits must be among them


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def call(port, path, body=None, timeout=300):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def wait_ready(port, proc, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server_check: llama-server exited with {proc.returncode} before it was ready")
        try:
            if call(port, "/health", timeout=5).get("status") == "ok":
                return
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            pass
        time.sleep(0.5)
    sys.exit(f"server_check: llama-server not ready after {seconds} s")


def digits(top, where):
    """P("1".."5") renormalised, from a top-token list with log-probabilities."""
    p = {}
    for t in top:
        if t["token"] in "12345" and len(t["token"]) == 1:
            p[t["token"]] = p.get(t["token"], 0.0) + math.exp(t["logprob"])
    missing = [d for d in "12345" if d not in p]
    if missing:
        sys.exit(f"server_check: digits {missing} not among the top {TOP} tokens of {where}")
    total = sum(p.values())
    return [p[d] / total for d in "12345"]


def ask(port, req):
    c = call(port, "/completion", {"prompt": req["prompt"], "n_predict": 1, "n_probs": TOP,
                                   "temperature": 0, "cache_prompt": False})
    ch = call(port, "/v1/chat/completions", {"messages": req["messages"], "max_tokens": 1,
                                             "logprobs": True, "top_logprobs": TOP,
                                             "temperature": 0, "cache_prompt": False})
    rendered = call(port, "/apply-template", {"messages": req["messages"]})["prompt"]
    return {
        "completion": digits(c["completion_probabilities"][0]["top_logprobs"], "/completion"),
        "chat": digits(ch["choices"][0]["logprobs"]["content"][0]["top_logprobs"],
                       "/v1/chat/completions"),
        "chat_prompt": rendered,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--requests", required=True)
    ap.add_argument("--threads", default="2")
    ap.add_argument("--log", required=True, help="file for the server's output")
    a = ap.parse_args()
    port = free_port()
    cmd = [a.server, "-m", a.model, "--jinja", "--host", "127.0.0.1", "--port", str(port),
           "-t", a.threads, "-c", "4096", "--parallel", "1"]
    print("server_check: " + " ".join(cmd), file=sys.stderr, flush=True)
    with open(a.log, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        try:
            wait_ready(port, proc)
            with open(a.requests) as f:
                for line in f:
                    if line.strip():
                        print(json.dumps(ask(port, json.loads(line))), flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
