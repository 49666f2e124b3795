// Browser side of the Flask sample: microphone → PCM16 → WebSocket; reply audio → WebAudio.
// window.appState holds what the page shows (the browser test reads it).
"use strict";

const state = (window.appState = {
  status: "idle", user: [], assistant: [], turns: 0,
  chunksReceived: 0, chunksPlayed: 0, samplesPlayed: 0, bargeIns: 0, errors: [],
});

let ctx = null, ws = null, stream = null, outputRate = 24000, playHead = 0;
const playing = new Set();
const $ = (id) => document.getElementById(id);

function setStatus(text) {
  state.status = text;
  $("status").textContent = text;
}

function addLine(role, text) {
  const p = document.createElement("p");
  p.className = role;
  p.textContent = text;
  $("transcript").appendChild(p);
  p.scrollIntoView({ block: "end" });
  return p;
}

let current = null; // the assistant line being streamed

function onEvent(msg) {
  switch (msg.type) {
    case "ready":
      outputRate = msg.outputRate;
      setStatus("listening — speak");
      break;
    case "speech_started":
      flushPlayback(); // barge-in: the user talks over the answer
      setStatus("hearing you…");
      break;
    case "user":
      state.user.push(msg.text);
      addLine("user", msg.text);
      break;
    case "delta":
      if (!current) {
        current = addLine("assistant", "");
        state.assistant.push("");
      }
      current.textContent += msg.text;
      state.assistant[state.assistant.length - 1] = current.textContent;
      break;
    case "done":
      state.turns += 1;
      current = null;
      setStatus(`listening — last reply ${msg.audioSeconds} s (${msg.status})`);
      break;
    case "error":
      state.errors.push(msg.message);
      addLine("error", msg.message);
      break;
    case "closed":
      setStatus("session closed");
      break;
  }
}

function play(data) {
  const pcm = new Int16Array(data);
  if (!pcm.length) return;
  state.chunksReceived += 1;
  const buffer = ctx.createBuffer(1, pcm.length, outputRate);
  const samples = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  playHead = Math.max(playHead, ctx.currentTime + 0.05);
  source.start(playHead);
  playHead += buffer.duration;
  playing.add(source);
  source.onended = () => {
    playing.delete(source);
    if (!source.flushed) {
      state.chunksPlayed += 1;
      state.samplesPlayed += pcm.length;
    }
  };
}

function flushPlayback() {
  if (playing.size) state.bargeIns += 1;
  for (const source of playing) {
    source.flushed = true;
    source.stop();
  }
  playing.clear();
  playHead = 0;
}

function showLevel(pcm) {
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) sum += pcm[i] * pcm[i];
  const db = 20 * Math.log10(Math.sqrt(sum / pcm.length) / 32768 + 1e-9);
  $("level").value = Math.max(0, Math.min(60, db + 60));
}

async function start() {
  $("start").disabled = true;
  setStatus("starting…");
  try {
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/static/capture-worklet.js");
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
  } catch (err) {
    state.errors.push(String(err));
    setStatus(`microphone unavailable: ${err}`);
    $("start").disabled = false;
    return;
  }
  const capture = new AudioWorkletNode(ctx, "pcm16-capture", {
    processorOptions: { chunkFrames: Math.round(ctx.sampleRate / 10) },
  });
  const mute = ctx.createGain();
  mute.gain.value = 0; // keeps the worklet running without playing the microphone back
  ctx.createMediaStreamSource(stream).connect(capture).connect(mute).connect(ctx.destination);

  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    ws.send(JSON.stringify({ type: "start", sampleRate: ctx.sampleRate }));
    setStatus("connecting…");
  };
  ws.onmessage = (e) => (typeof e.data === "string" ? onEvent(JSON.parse(e.data)) : play(e.data));
  ws.onclose = () => setStatus("disconnected");
  capture.port.onmessage = (e) => {
    showLevel(new Int16Array(e.data));
    if (ws.readyState === WebSocket.OPEN) ws.send(e.data);
  };
  $("stop").disabled = false;
}

function stop() {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
  if (stream) stream.getTracks().forEach((t) => t.stop());
  if (ctx) ctx.close();
  $("stop").disabled = true;
  $("start").disabled = false;
  setStatus("stopped");
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
if (new URLSearchParams(location.search).has("autostart")) start();
