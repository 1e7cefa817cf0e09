// The hidden #act-bridge: app.js sets its value to "<action>:<turn>:<arg>:<time>" and triggers submit.
window.__ragAct = { props: props, trigger: trigger };
