// Tasks through the official TypeScript SDK (@modelcontextprotocol/sdk 1.x, which speaks the
// 2025-11-25 experimental tasks): callToolStream on a 5-second exec yields the task, status
// updates and the result; getTask, listTasks and cancelTask on a `sleep 100` exec, after which
// the session answers at once. Run by scripts/conformance.sh against a live server:
//
//   MCP_SDK_DIR=.tools/conformance/node_modules/@modelcontextprotocol/sdk node tasks.mjs URL
//
// Prints one line per check and exits non-zero on the first failure.

const sdk = process.env.MCP_SDK_DIR;
const url = process.argv[2];
if (!sdk || !url) {
    console.error("usage: MCP_SDK_DIR=<sdk package dir> node tasks.mjs <server url>");
    process.exit(2);
}
const { Client } = await import(`${sdk}/dist/esm/client/index.js`);
const { StreamableHTTPClientTransport } = await import(`${sdk}/dist/esm/client/streamableHttp.js`);

function check(what, ok, detail) {
    if (!ok) {
        console.error(`FAIL ${what}: ${JSON.stringify(detail)}`);
        process.exit(1);
    }
    console.log(`ok   ${what}`);
}

// A hung server fails the run instead of stalling it.
const watchdog = setTimeout(() => {
    console.error("FAIL the run did not finish within 120 s");
    process.exit(1);
}, 120_000);

const client = new Client({ name: "stablehand-tasks-test", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const caps = client.getServerCapabilities();
check("the server advertises task-augmented tools/call", caps?.tasks?.requests?.tools?.call !== undefined, caps);
const tools = await client.listTools();
const exec = tools.tools.find((t) => t.name === "session_exec");
check("session_exec may run as a task", exec?.execution?.taskSupport === "optional", exec?.execution);

const created = await client.callTool({ name: "session_create", arguments: {} });
const sid = created.structuredContent.session_id;
check("a shell session was created", typeof sid === "string", created);

// callToolStream adds the task itself (the tool and the server support it).
const seen = [];
let result;
for await (const m of client.experimental.tasks.callToolStream({
    name: "session_exec",
    arguments: { session_id: sid, input: "sleep 5; echo done" },
})) {
    seen.push(m.type);
    if (m.type === "result") result = m.result;
    if (m.type === "error") check("callToolStream ends without an error", false, String(m.error));
}
check("callToolStream yields the task first", seen[0] === "taskCreated", seen);
check("callToolStream yields status updates", seen.includes("taskStatus"), seen);
check("callToolStream ends with the result", seen.at(-1) === "result", seen);
check("the result is what the exec returned", result?.structuredContent?.stdout === "done\n", result);

const stream = client.experimental.tasks.callToolStream({
    name: "session_exec",
    arguments: { session_id: sid, input: "sleep 100" },
});
const first = await stream.next();
check("a sleep 100 exec is a task", first.value?.type === "taskCreated", first.value);
const taskId = first.value.task.taskId;
const got = await client.experimental.tasks.getTask(taskId);
check("getTask sees it working", got.status === "working", got);
const listed = await client.experimental.tasks.listTasks();
check("listTasks lists it", listed.tasks.some((t) => t.taskId === taskId && t.status === "working"), listed);
const cancelled = await client.experimental.tasks.cancelTask(taskId);
check("cancelTask cancels it", cancelled.status === "cancelled", cancelled);
const rest = [];
for await (const m of stream) rest.push(m.type);
check("its stream ends with an error (cancelled)", rest.at(-1) === "error", rest);
const started = Date.now();
const echo = await client.callTool({ name: "session_exec", arguments: { session_id: sid, input: "echo ok" } });
check("the session answers right after", echo.structuredContent?.stdout === "ok\n", echo);
console.log(`     (echo ok took ${Date.now() - started} ms after the cancel)`);
try {
    await client.experimental.tasks.cancelTask(taskId);
    check("cancelling it again is refused", false, "accepted");
} catch (e) {
    check("cancelling it again is refused with -32602", e.code === -32602, { code: e.code, message: e.message });
}
try {
    await client.experimental.tasks.getTask("0123456789abcdef0123456789abcdef");
    check("an unknown task is refused", false, "accepted");
} catch (e) {
    check("an unknown task is refused with -32602", e.code === -32602, { code: e.code, message: e.message });
}
await client.callTool({ name: "session_end", arguments: { session_id: sid } });
await client.close();
clearTimeout(watchdog);
console.log("PASS typescript sdk tasks");
