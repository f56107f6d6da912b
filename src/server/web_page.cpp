#include "server/web_page.h"

namespace kakusan::server {

const std::string& web_page() {
  static const std::string page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kakusan</title>
<style>
  body { font-family: sans-serif; max-width: 52em; margin: 2em auto; padding: 0 1em; }
  label { display: block; margin-top: .6em; }
  textarea, input, select { font: inherit; }
  textarea { width: 100%; }
  progress { width: 100%; margin-top: 1em; }
  #images img { max-width: 100%; margin: .5em .5em 0 0; image-rendering: pixelated; }
  #status { color: #555; }
</style>
</head>
<body>
<h1>kakusan</h1>
<form id="form">
  <label>Prompt <textarea id="prompt" rows="3">a photo of an astronaut riding a horse</textarea></label>
  <label>Negative prompt <textarea id="negative_prompt" rows="2"></textarea></label>
  <label>Steps <input id="steps" type="number" min="1" value="20"></label>
  <label>Width <input id="width" type="number" min="8" step="8" value="512"></label>
  <label>Height <input id="height" type="number" min="8" step="8" value="512"></label>
  <label>Seed (-1: random) <input id="seed" type="number" value="-1"></label>
  <label>Sampler <select id="sampler"><option value="">the model's scheduler</option></select></label>
  <label>API key (if the server needs one) <input id="key" type="password"></label>
  <p><button id="generate" type="submit">Generate</button> <button id="interrupt" type="button">Interrupt</button></p>
</form>
<progress id="progress" max="1" value="0"></progress>
<p id="status"></p>
<div id="images"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
function headers() {
  const h = {"Content-Type": "application/json"};
  if ($("key").value) h["Authorization"] = "Bearer " + $("key").value;
  return h;
}
fetch("sdapi/v1/samplers", {headers: headers()}).then((r) => r.ok ? r.json() : []).then((list) => {
  for (const s of list) {
    const o = document.createElement("option");
    o.value = o.textContent = s.name;
    $("sampler").appendChild(o);
  }
}).catch(() => {});
fetch("sdapi/v1/options", {headers: headers()}).then((r) => r.ok ? r.json() : {}).then((o) => {
  if (o.kakusan_default_width) $("width").value = o.kakusan_default_width;
  if (o.kakusan_default_height) $("height").value = o.kakusan_default_height;
}).catch(() => {});
let polling = null;
function poll() {
  fetch("sdapi/v1/progress", {headers: headers()}).then((r) => r.json()).then((p) => {
    $("progress").value = p.progress;
    if (p.state.sampling_steps) $("status").textContent = "step " + p.state.sampling_step + " / " + p.state.sampling_steps;
  }).catch(() => {});
}
$("interrupt").addEventListener("click", () => fetch("sdapi/v1/interrupt", {method: "POST", headers: headers()}));
$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    prompt: $("prompt").value, negative_prompt: $("negative_prompt").value,
    steps: Number($("steps").value), width: Number($("width").value), height: Number($("height").value),
    seed: Number($("seed").value),
  };
  if ($("sampler").value) body.sampler_name = $("sampler").value;
  $("generate").disabled = true;
  $("status").textContent = "generating...";
  $("progress").value = 0;
  polling = setInterval(poll, 300);
  try {
    const r = await fetch("sdapi/v1/txt2img", {method: "POST", headers: headers(), body: JSON.stringify(body)});
    const out = await r.json();
    if (!r.ok) throw new Error(out.detail || ("HTTP " + r.status));
    const info = JSON.parse(out.info);
    $("images").replaceChildren(...out.images.map((b64, i) => {
      const img = document.createElement("img");
      img.src = "data:image/png;base64," + b64;
      img.alt = "image " + i;
      img.className = "result";
      img.title = info.infotexts[i];
      return img;
    }));
    $("progress").value = 1;
    $("status").textContent = "done: seed " + info.seed;
  } catch (e) {
    $("status").textContent = "error: " + e.message;
  } finally {
    clearInterval(polling);
    $("generate").disabled = false;
  }
});
</script>
</body>
</html>
)HTML";
  return page;
}

}  // namespace kakusan::server
