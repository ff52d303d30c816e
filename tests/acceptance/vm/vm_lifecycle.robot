*** Settings ***
Documentation    VmLibrary against the real QEMU: launch, ready, QMP command and event, shut down,
...              power cut and restart on the same disks, and clean-up by the listener.

Library          Collections
Library          OperatingSystem
Library          Process
Library          VmLibrary    boot_timeout=120

Test Tags        vm    acceptance


*** Test Cases ***
Launch Returns A Ready Handle
    [Documentation]    The handle carries the SSH port, QMP socket, key file and device ids.
    ${vm}    Launch NVMe VM    name=handle    size=256M
    Should Be True    1024 <= ${vm.ssh_port} <= 65535
    File Should Exist    ${vm.key_file}
    Should Exist    ${vm.qmp_socket}
    Should Be Equal    ${vm.device_ids}    ${{["nvme0"]}}
    ${mode}    Evaluate    oct(__import__("os").stat($vm.run_dir).st_mode & 0o777)
    Should Be Equal    ${mode}    0o700
    ${devices}    Get VM Guest Devices    ${vm}
    Should Be Equal    ${devices}    ${{{"NVMECHAOS0000": ["/dev/nvme0n1"]}}}
    File Should Exist    ${vm.console_log}

QMP Command And Event Are Recorded
    [Documentation]    query-status works; device_del of the controller gives DEVICE_DELETED,
    ...    device_add brings it back, and QEMU errors quote their class.
    ${vm}    Launch NVMe VM    name=qmp    size=256M
    ${status}    Execute QMP Command    ${vm}    query-status
    Should Be Equal    ${status}[status]    running
    Unplug And Replug Controller    ${vm}
    ${events}    Get QMP Events    ${vm}    DEVICE_DELETED
    Length Should Be    ${events}    1
    Run Keyword And Expect Error    QMP 'device_del' failed: DeviceNotFound: *
    ...    Execute QMP Command    ${vm}    device_del    id=nope

Shut Down, Power Cut And Restart On The Same Disks
    [Documentation]    Data written before a clean shutdown and before a power cut is read back after restarts.
    ${vm}    Launch NVMe VM    name=restart    size=64M
    Write Marker    ${vm}    first
    Shut Down And Restart    ${vm}
    Marker Should Be    ${vm}    first
    Write Marker    ${vm}    second
    Power Cut And Restart    ${vm}
    Marker Should Be    ${vm}    second
    ${shutdowns}    Get QMP Events    ${vm}    SHUTDOWN
    Length Should Be    ${shutdowns}    1

Two Controllers With Two Namespaces Each
    [Documentation]    Each controller sits on its own root port, with its own serial; all namespaces appear.
    ${vm}    Launch NVMe VM
    ...    name=multi
    ...    size=128M
    ...    namespaces=2
    ...    controllers=2
    ...    serials=${{["SERA", "SERB"]}}
    ${devices}    Get VM Guest Devices    ${vm}
    Length Should Be    ${devices}[SERA]    2
    Length Should Be    ${devices}[SERB]    2
    Should Be Equal    ${vm.controllers[1].bus}    rp1

Layout With A 4 KiB Namespace
    [Documentation]    A JSON layout: one controller with a 512 B and a 4 KiB namespace, one with a
    ...    qcow2-backed namespace created on the fly.
    ${layout}    Catenate    [{"serial": "LAY0", "namespaces": ["64M", {"size": "64M", "block_size": 4096}]},
    ...    {"serial": "LAY1", "namespaces": [{"size": "32M", "format": "qcow2"}]}]
    ${vm}    Launch NVMe VM    name=layout    layout=${layout}
    ${devices}    Get VM Guest Devices    ${vm}
    ${second}    Evaluate    sorted($devices["LAY0"])[1].split("/")[-1]
    ${bs}    Guest Command Should Succeed    ${vm}    cat /sys/block/${second}/queue/logical_block_size
    Should Be Equal As Integers    ${bs}    4096
    Should Be Equal    ${vm.controllers[1].namespaces[0].format}    qcow2
    Length Should Be    ${devices}[LAY1]    1

NBD Export As Namespace
    [Documentation]    A namespace served by nbdkit over a unix socket: present in the guest, writable.
    ${socket}    Evaluate    __import__("tempfile").mktemp(prefix="nbd-", suffix=".sock")
    ${nbdkit}    Start Process    nbdkit    --foreground    --exit-with-parent    --unix    ${socket}
    ...    memory    size\=128M
    TRY
        Wait Until Keyword Succeeds    10s    0.2s    Should Exist    ${socket}
        ${vm}    Launch NVMe VM    name=nbd    nbd=nbd+unix:///?socket=${socket}
        ${size}    Guest Command Should Succeed    ${vm}    cat /sys/block/nvme0n1/size
        Should Be Equal As Integers    ${size}    262144
        Write Marker    ${vm}    nbd
        Marker Should Be    ${vm}    nbd
    FINALLY
        Stop All VMs
        Terminate Process    ${nbdkit}    kill=True
    END

Console Tail And Running State
    [Documentation]    A ready VM runs and its serial console ends with the guest's init; after a power
    ...    cut it runs no more, and `VM Should Be Running` says so in one line.
    ${vm}    Launch NVMe VM    name=console    size=64M
    VM Should Be Running    ${vm}
    Should Be Equal    ${vm.state.value}    ready
    Console Tail Should Show The Guest Init    ${vm}
    Power Cut VM    ${vm}
    Should Be Equal    ${vm.state.value}    stopped
    Run Keyword And Expect Error    VM 'console' is not running    VM Should Be Running    ${vm}

The Listener Stops VMs Left Running
    [Documentation]    A VM launched without teardown is gone once its test ended (checked by the next test).
    ${vm}    Launch NVMe VM    name=leftover    size=64M    wait=False
    VAR    ${LEFTOVER_PID}    ${vm.pid}    scope=SUITE

No QEMU Is Left From The Previous Test
    [Documentation]    The pid of the previous test's VM no longer exists.
    Should Not Exist    /proc/${LEFTOVER_PID}


*** Keywords ***
Console Tail Should Show The Guest Init
    [Documentation]    The console's last 200 lines hold the guest init's line (after it dropbear logs
    ...    2-4 lines per SSH connection, more when the readiness probe had to retry under load, so
    ...    the default 20 lines did not always reach it); one line is one line.
    [Arguments]    ${vm}
    ${tail}    Get VM Console Tail    ${vm}    lines=200
    Should Contain    ${tail}    nvmechaos: sshd started
    ${last}    Get VM Console Tail    ${vm}    lines=1
    Should Not Be Empty    ${last}
    Should Not Contain    ${last}    ${SPACE}|${SPACE}

Guest Command Should Succeed
    [Documentation]    Run ${command} in the guest with the engine's SSH client and return its stdout.
    [Arguments]    ${vm}    ${command}
    ${ssh}    Evaluate    $vm.ssh()
    TRY
        ${result}    Evaluate    $ssh.run($command)
    FINALLY
        Evaluate    $ssh.close()
    END
    Should Be Equal As Integers    ${result.exit_code}    0    ${result.stderr}
    RETURN    ${result.stdout}

Unplug And Replug Controller
    [Documentation]    device_del nvme0, wait for DEVICE_DELETED, device_add it back, wait until ready.
    [Arguments]    ${vm}
    Execute QMP Command    ${vm}    device_del    id=nvme0
    ${event}    Wait For QMP Event    ${vm}    DEVICE_DELETED    timeout=20    device=nvme0
    Should Be True    ${event}[monotonic] > 0
    ${args}    Evaluate    $vm.controllers[0].device_add_arguments()
    Execute QMP Command    ${vm}    device_add    arguments=${args}
    Wait Until VM Is Ready    ${vm}    timeout=30

Write Marker
    [Documentation]    Write ${text} to the first sector of /dev/nvme0n1 and flush it.
    [Arguments]    ${vm}    ${text}
    Guest Command Should Succeed    ${vm}    echo ${text} | dd of=/dev/nvme0n1 bs=512 count=1 conv=sync,fsync

Marker Should Be
    [Documentation]    The first sector of /dev/nvme0n1 starts with ${text}.
    [Arguments]    ${vm}    ${text}
    ${length}    Get Length    ${text}
    ${out}    Guest Command Should Succeed    ${vm}    head -c ${length} /dev/nvme0n1
    Should Be Equal    ${out}    ${text}

Power Cut And Restart
    [Documentation]    SIGKILL QEMU (exit code -9), then boot again on the same disks.
    [Arguments]    ${vm}
    ${code}    Power Cut VM    ${vm}
    Should Be Equal As Integers    ${code}    -9
    Restart VM    ${vm}

Shut Down And Restart
    [Documentation]    Clean shutdown (QEMU gone), then boot again on the same disks.
    [Arguments]    ${vm}
    Shut Down VM    ${vm}
    VM Should Not Be Running    ${vm}
    Restart VM    ${vm}
