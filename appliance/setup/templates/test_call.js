// Test call: the owner talks to the agent from this browser (WebRTC, no build step).
// The offer is sent whole (ICE gathering finished, host candidates only: the box is this
// machine), the answer comes back from voxeron-voice through /api/test-call. The page also
// refreshes itself every few seconds, except while a test call runs (or was just shown).
(() => {
  "use strict";
  const button = document.getElementById("test-call-button");
  const hangup = document.getElementById("test-call-hangup");
  const stateEl = document.getElementById("test-call-state");
  const transcript = document.getElementById("test-call-transcript");
  const audio = document.getElementById("test-call-audio");
  let pc = null;
  let stream = null;
  let callId = null;
  let poll = null;
  let holdRefresh = false;

  setInterval(() => { if (!holdRefresh) location.reload(); }, 3000);

  function show(state) {
    stateEl.textContent = state;
    document.body.dataset.testCall = state;
  }

  function gathered(peer) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      peer.addEventListener("icegatheringstatechange", () => {
        if (peer.iceGatheringState === "complete") resolve();
      });
      setTimeout(resolve, 3000); // host candidates come at once; never wait forever
    });
  }

  async function json(response) {
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || response.statusText);
    return body;
  }

  async function refresh() {
    if (!callId) return;
    const id = encodeURIComponent(callId);
    const turns = await json(await fetch(`/api/calls/${id}/turns`));
    transcript.replaceChildren(...turns.map((turn) => {
      const li = document.createElement("li");
      li.dataset.speaker = turn.speaker;
      li.textContent = `${turn.speaker === "agent" ? "Agent" : "You"}: ${turn.text}`;
      return li;
    }));
    const state = await json(await fetch(`/api/test-call/${id}`));
    if (state.state === "ended") await finish("ended");
  }

  async function finish(label) {
    if (poll !== null) clearInterval(poll);
    poll = null;
    if (pc !== null) pc.close();
    pc = null;
    if (stream !== null) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    show(label);
    button.disabled = false;
    hangup.disabled = true;
    setTimeout(() => { holdRefresh = pc !== null; }, 20000); // time to read the transcript
  }

  async function start() {
    holdRefresh = true;
    button.disabled = true;
    transcript.replaceChildren();
    callId = null;
    show("starting");
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      pc = new RTCPeerConnection({ iceServers: [] });
      stream.getTracks().forEach((track) => pc.addTrack(track, stream));
      pc.ontrack = (event) => {
        audio.srcObject = event.streams[0] || new MediaStream([event.track]);
        audio.play().catch(() => {}); // autoplay may be refused; the call goes on
      };
      pc.onconnectionstatechange = () => {
        if (pc === null) return;
        if (pc.connectionState === "failed") finish("failed");
        else if (pc.connectionState === "connected") show("in call");
      };
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const answer = await json(await fetch("/api/test-call", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }),
      }));
      callId = answer.call_id;
      document.body.dataset.testCallId = callId;
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      show("connecting");
      hangup.disabled = false;
      poll = setInterval(() => refresh().catch(() => {}), 1000);
    } catch (err) {
      await finish(`error: ${err.message}`);
    }
  }

  button.addEventListener("click", start);
  hangup.addEventListener("click", async () => {
    if (callId) await fetch(`/api/test-call/${encodeURIComponent(callId)}/hangup`, { method: "POST" });
    await refresh().catch(() => {});
    await finish("ended");
  });
})();
