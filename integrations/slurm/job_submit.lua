--[[
runpermit admission for Slurm (job_submit/lua, Slurm 22.05, Lua 5.1).

A job that requests GPUs is admitted only if `runpermit gate check` allows it: the job names
its permit and log proof in its environment (RUNPERMIT_PERMIT, RUNPERMIT_PROOF: paths, relative
ones against the job's working directory), and the gate checks them against the cluster, the
GPU count and the time limit. A refusal reaches the user as the gate's own line,
"DENY (code): message". Jobs without GPUs are admitted without asking the gate. If the gate
cannot run (missing binary, broken configuration, timeout), GPU jobs are refused: fail closed.

The settings below can be overridden, without editing this file, by Lua assignments in
job_submit_runpermit.conf beside it (read for each GPU job: edits apply at once), e.g.
    RUNPERMIT_BIN = "/opt/runpermit/bin/runpermit"
    CLUSTER = { gpu = "us-east-1", ["gpu-long"] = "us-east-1" }
The gate runs as SlurmUser on the controller: that user must be able to execute RUNPERMIT_BIN,
read GATE_CONFIG and the job's permit files, and write GATE_CONFIG's directory.
See README.md beside this file.
--]]

-- Path of the runpermit binary.
local RUNPERMIT_BIN = "/usr/local/bin/runpermit"
-- The gate's configuration (crates/runpermit-gate/examples/gate.toml).
local GATE_CONFIG = "/etc/runpermit/gate.toml"
-- The cluster id the gate and the permits use: a string for all jobs; a table mapping a
-- partition to a cluster id; or nil: the job's partition name is the cluster id.
local CLUSTER = nil
-- The longest a gate check may take, in seconds (slurmctld waits for it holding its locks);
-- runs under coreutils' `timeout`. nil: no limit.
local TIMEOUT_SECONDS = 15

local KEYS = { "RUNPERMIT_BIN", "GATE_CONFIG", "CLUSTER", "TIMEOUT_SECONDS" }
local DEFAULTS = {
	RUNPERMIT_BIN = RUNPERMIT_BIN,
	GATE_CONFIG = GATE_CONFIG,
	CLUSTER = CLUSTER,
	TIMEOUT_SECONDS = TIMEOUT_SECONDS,
}
local SETTINGS_FILE = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "/etc/slurm")
	.. "/job_submit_runpermit.conf"

-- The settings: the defaults above, overridden by SETTINGS_FILE if it exists (read for each
-- GPU job, in a sandbox, so that edits apply at once). Returns them, or nil and the error.
local function settings()
	local s = {}
	for key, value in pairs(DEFAULTS) do
		s[key] = value
	end
	local file = io.open(SETTINGS_FILE, "r")
	if not file then
		return s
	end
	file:close()
	local chunk, err = loadfile(SETTINGS_FILE)
	local env = {}
	if chunk then
		setfenv(chunk, env)
		local ok, run_err = pcall(chunk)
		if not ok then
			err = run_err
		end
	end
	if err then
		return nil, tostring(err)
	end
	for _, key in ipairs(KEYS) do
		if env[key] ~= nil then
			s[key] = env[key]
		end
	end
	return s
end

local NO_VAL, INFINITE = slurm.NO_VAL, slurm.INFINITE

-- A number field of the job, or nil when Slurm left it unset.
local function number(value)
	if value == nil or value == NO_VAL or value == INFINITE or value == 65534 then
		return nil
	end
	return tonumber(value)
end

-- A positive count, or nil.
local function count(value)
	local n = number(value)
	return (n and n > 0) and n or nil
end

-- GPUs in a TRES string: "gres:gpu:8", "gres:gpu:h100:8", "gres/gpu:8", "gres/gpu=8",
-- "gres:gpu" (one), possibly among other comma-separated TRES.
local function gpus_in(tres)
	local total = 0
	for item in string.gmatch(tres or "", "[^,]+") do
		local rest = item:match("^gres[:/]gpu(.*)$")
		if rest then
			total = total + (tonumber(rest:match("[:=](%d+)$") or "") or 1)
		end
	end
	return total
end

-- All GPUs the job may use: the largest of its per-job, per-node, per-task and per-socket
-- requests, each multiplied out (nodes: the most it may get).
local function requested_gpus(job)
	local nodes = count(job.max_nodes) or count(job.min_nodes) or 1
	local tasks = count(job.num_tasks) or 1
	local sockets = count(job.sockets_per_node) or 1
	return math.max(
		gpus_in(job.tres_per_job),
		gpus_in(job.tres_per_node) * nodes,
		gpus_in(job.tres_per_task) * tasks,
		gpus_in(job.tres_per_socket) * sockets * nodes
	)
end

-- The partitions the job may run in: its own (comma-separated), else the default one.
local function partitions(job, part_list)
	local names = {}
	for name in string.gmatch(job.partition or "", "[^,]+") do
		table.insert(names, name)
	end
	if #names == 0 then
		for name, part in pairs(part_list or {}) do
			if part.flag_default == 1 then
				table.insert(names, part.name or name)
			end
		end
	end
	return names
end

local function cluster_for(cfg, partition)
	if type(cfg.CLUSTER) == "table" then
		return cfg.CLUSTER[partition] or partition
	end
	return cfg.CLUSTER or partition
end

-- The time limit in hours: the job's, else the partition's default or maximum; nil if none.
local function hours(job, part)
	local minutes = number(job.time_limit)
	if not minutes and part then
		minutes = number(part.default_time) or number(part.max_time)
	end
	return minutes and minutes / 60 or nil
end

local function quote(s) -- one shell word, whatever s contains
	return "'" .. string.gsub(s, "'", "'\\''") .. "'"
end

local function absolute(path, dir)
	if path:sub(1, 1) == "/" or not dir then
		return path
	end
	return dir .. "/" .. path
end

-- Runs the gate for one cluster. Returns nil when it allows the job (and the permit and run
-- it runs under, if any), else the reason.
local function gate(cfg, job, cluster, gpus, job_hours)
	local env = job.environment -- nil for jobs without a batch script (salloc, srun)
	local permit = env and env["RUNPERMIT_PERMIT"]
	local proof = env and env["RUNPERMIT_PROOF"]
	if permit == "" then
		permit = nil
	end
	if proof == "" then
		proof = nil
	end
	if (permit == nil) ~= (proof == nil) then
		return "runpermit: set both RUNPERMIT_PERMIT and RUNPERMIT_PROOF (from "
			.. "`runpermit permit get ID -o permit.jwt --proof permit.proof`)"
	end
	local args = {
		quote(cfg.RUNPERMIT_BIN), "gate", "check", "--config", quote(cfg.GATE_CONFIG),
		"--cluster", quote(cluster), "--accelerators", tostring(gpus),
	}
	if job_hours then
		table.insert(args, "--hours")
		table.insert(args, string.format("%.4f", job_hours))
	end
	if permit then
		table.insert(args, "--permit")
		table.insert(args, quote(absolute(permit, job.work_dir)))
		table.insert(args, "--proof")
		table.insert(args, quote(absolute(proof, job.work_dir)))
	end
	local command = table.concat(args, " ")
	if tonumber(cfg.TIMEOUT_SECONDS) then
		command = "timeout -k 1 " .. tonumber(cfg.TIMEOUT_SECONDS) .. " " .. command
	end
	-- Lua 5.1's popen does not give the exit status: the shell prints it last.
	local pipe = io.popen(command .. " </dev/null 2>&1; echo \"runpermit-exit:$?\"", "r")
	if not pipe then
		return "runpermit: the gate could not be started; GPU jobs are refused until it can"
	end
	local output = pipe:read("*a") or ""
	pipe:close()
	-- `gate check` exits 0 when it allows the job, 1 when it refuses it (whatever the code;
	-- its "DENY (code): message" line on stderr) and 2 when it made no decision (its error
	-- on stderr); anything else (`timeout`'s 124, a crash) is no decision either.
	local status = tonumber(output:match("runpermit%-exit:(%d+)%s*$"))
	if status == 0 then
		-- The permit and run the job runs under ("… is permitted under permit P for run R:
		-- …"), so that `runpermit gate enforce` and the gate's metering can find them.
		local permit_id, run_id = output:match("under permit ([%w_%-%.]+) for run ([%w_%-%.]+)")
		return nil, permit_id or output:match("under permit ([%w_%-%.]+)"), run_id
	end
	local deny = status == 1 and output:match("(DENY %([%w_]+%)[^\n]*)")
	if deny then
		return deny
	end
	-- The gate did not decide: report why (last line of its output) and fail closed.
	local last = "no output"
	for line in output:gmatch("[^\n]+") do
		if not line:match("^runpermit%-exit:") then
			last = line
		end
	end
	slurm.log_error("runpermit: gate check failed (exit %s): %s", tostring(status), last)
	return string.format("runpermit: the gate could not decide (exit %s: %s); "
		.. "GPU jobs are refused until an administrator fixes it", tostring(status), last)
end

function slurm_job_submit(job_desc, part_list, submit_uid)
	local gpus = requested_gpus(job_desc)
	if gpus == 0 then
		return slurm.SUCCESS -- no accelerators: the gate has nothing to say
	end
	local cfg, err = settings()
	local reason = err and ("runpermit: the plugin's settings are broken (" .. err
		.. "); GPU jobs are refused until an administrator fixes them")
	local names = partitions(job_desc, part_list)
	if not reason and #names == 0 then
		reason = "runpermit: the job names no partition and there is no default one"
	end
	local permit_id, run_id
	for _, name in ipairs(reason and {} or names) do
		reason, permit_id, run_id = gate(cfg, job_desc, cluster_for(cfg, name), gpus,
			hours(job_desc, part_list[name]))
		if reason then
			break
		end
	end
	if reason then
		slurm.log_info("runpermit: refused a job of uid %d (%d GPUs): %s",
			submit_uid, gpus, reason)
		slurm.log_user("%s", reason)
		return slurm.ESLURM_ACCESS_DENIED
	end
	if permit_id then
		-- Only administrators can change AdminComment: the job stays tied to its permit and
		-- run ("runpermit:permit=<permit id>;run=<run id>"; the gate also reads the older
		-- "runpermit:permit=<permit id>").
		job_desc.admin_comment = "runpermit:permit=" .. permit_id
			.. (run_id and (";run=" .. run_id) or "")
	end
	return slurm.SUCCESS
end

-- The job's environment is not available when a job is modified, so its permit cannot be
-- checked again: changes that could move a GPU job beyond what was checked (GPUs, nodes,
-- tasks, partition) are refused unless made by root. (Slurm 22.05 does not
-- show log_user messages from here; the reason goes to the controller's log.)
function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
	if modify_uid == 0 then
		return slurm.SUCCESS
	end
	local changes = job_desc.tres_per_job or job_desc.tres_per_node or job_desc.tres_per_task
		or job_desc.tres_per_socket or count(job_desc.min_nodes) or count(job_desc.max_nodes)
		or count(job_desc.num_tasks) or job_desc.partition
	if changes and (requested_gpus(job_desc) > 0 or requested_gpus(job_rec) > 0) then
		slurm.log_info("runpermit: refused uid %d changing GPU job %s", modify_uid,
			tostring(job_rec.job_id))
		slurm.log_user("%s", "runpermit: the GPUs, nodes, tasks or partition of a GPU job "
			.. "cannot be changed; cancel it and submit it again under its permit")
		return slurm.ESLURM_ACCESS_DENIED
	end
	return slurm.SUCCESS
end

slurm.log_info("runpermit: job_submit.lua loaded (settings: %s)", SETTINGS_FILE)
return slurm.SUCCESS
