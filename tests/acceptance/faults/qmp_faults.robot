*** Settings ***
Documentation    Hot-plug, throttle and impact keywords on bad input and on faults of their own: an
...              unknown device, a command QEMU rejects, a device that never comes back, an unplug
...              that does not finish in time, an injector that dies under a running guest, a QEMU
...              that is gone. Each is one clear failure, never a hang, and nothing is left running.

Library          Process
Library          ${CURDIR}/FaultChecks.py
Resource         ../../../resources/faults.resource

Suite Setup      Launch Fault VM

Test Tags        acceptance    fault    negative


*** Variables ***
${VM}    ${None}


*** Test Cases ***
Unknown Device Is A Clear Failure
    Run Keyword And Expect Error    VM 'qmpfaults' has no NVMe controller 'nvme9' (controllers: nvme0)
    ...    Hot Unplug NVMe Device    ${VM}    nvme9
    Run Keyword And Expect Error    VM 'qmpfaults' has no NVMe controller 'nvme9' (controllers: nvme0)
    ...    Hot Plug NVMe Device    ${VM}    nvme9
    Run Keyword And Expect Error    VM 'qmpfaults' has no NVMe controller or namespace 'nvme9'*
    ...    Set IO Throttle    ${VM}    nvme9    iops=100
    Run Keyword And Expect Error    'nope' is not a VM (use the handle `Launch NVMe VM` returned)
    ...    Hot Unplug NVMe Device    nope    nvme0

Bad Throttle Limits Are Refused
    Run Keyword And Expect Error
    ...    ValueError: Argument 'iops' got value 'lots' that cannot be converted to integer or None.
    ...    Set IO Throttle    ${VM}    nvme0    iops=lots
    Run Keyword And Expect Error    iops (total) cannot be combined with iops_read/iops_write
    ...    Set IO Throttle    ${VM}    nvme0    iops=100    iops_read=50
    Run Keyword And Expect Error    no throttle limit given*
    ...    Set IO Throttle    ${VM}    nvme0

QMP Command QEMU Rejects Names Its Error
    [Documentation]    A limit above QEMU's maximum, and a plug of a device that is still plugged:
    ...    QEMU's error class and text are in the failure.
    Run Keyword And Expect Error    QEMU refused throttle limits iops-total 1000000000000001*GenericError*
    ...    Set IO Throttle    ${VM}    nvme0    iops=1000000000000001
    Run Keyword And Expect Error    hot-plug of 'nvme0' on VM 'qmpfaults': QMP 'device_add' failed: GenericError:*
    ...    Hot Plug NVMe Device    ${VM}    nvme0

Unplug That Does Not Finish In Time Fails Clearly
    [Documentation]    A timeout shorter than the guest's release of the device.
    Run Keyword And Expect Error    'nvme0' of VM 'qmpfaults' was not unplugged: no DEVICE_DELETED within 0.001 s*
    ...    Hot Unplug NVMe Device    ${VM}    nvme0    timeout=0.001
    Wait Until Keyword Succeeds    5s    0.2s    Controller Should Be Gone
    Hot Plug NVMe Device    ${VM}    nvme0

Device That Never Comes Back Fails Clearly
    [Documentation]    The guest's NVMe driver is unloaded while the controller is out, so the
    ...    plugged controller never shows a namespace: the plug fails after its timeout with the
    ...    console's last lines; loading the driver again brings it back.
    [Timeout]    1 minute
    Hot Unplug NVMe Device    ${VM}    nvme0
    Run In Guest    rmmod nvme
    TRY
        Run Keyword And Expect Error    'nvme0' of VM 'qmpfaults' did not come back*within 2 s after device_add*
        ...    Hot Plug NVMe Device    ${VM}    nvme0    timeout=2
    FINALLY
        Run In Guest    insmod /lib/modules/$(grep '/nvme\.ko' /etc/nvmechaos/modules)
    END
    Wait Until Keyword Succeeds    10s    0.5s    Namespace Should Be Usable

Impact Without A Timeline Or A Fault Fails Clearly
    [Documentation]    A guest run without timeline.json, and a run with no fault in it.
    ${result}    Run Fio Job On VM    ${VM}    faults/fault_workload    runtime=2
    Run Keyword And Expect Error    fio's start on the host clock is unknown: no timeline.json*
    ...    Fault Impact Should Be Within    ${result}    max_recovery_s=1
    Run Keyword And Expect Error    no fault was active during the fio run*
    ...    Fault Impact Should Be Within    ${result}    @{EMPTY}    origin=0    max_recovery_s=1
    Run Keyword And Expect Error    no impact limit given*
    ...    Fault Impact Should Be Within    ${result}

Injector Dying Under A Running Guest Fails Clearly
    [Documentation]    nbdkit is killed while fio runs in a guest whose namespace it serves: the
    ...    next injector keyword says it died, and fio ends with an I/O error once QEMU stops
    ...    waiting for the server to come back (reconnect-delay 20 s): no hang.
    [Timeout]    2 minutes
    ${injector}    Start Latency Injector    size=64M    engine=nbdkit
    ${vm}    Launch NVMe VM    name=dying    nbd=${injector.uri}
    ${fio}    Start Fio Job On VM    ${vm}    faults/fault_workload    runtime=5    size=32m    offset=0
    Sleep    2s
    Kill Injector Process    ${injector}
    Run Keyword And Expect Error    *is no longer running (killed by signal 9*
    ...    Inject Latency Spike    ${injector}    read=10ms
    ${result}    Wait For Fio Job On VM    ${fio}    allow_errors=True
    Should Not Be Equal As Integers    ${result.jobs[0].error}    0    fio reported no error after the injector died

Faults On A VM That Is Gone Fail Clearly
    [Documentation]    Last: QEMU killed, then every QMP fault keyword fails at once.
    Power Cut VM    ${VM}
    Run Keyword And Expect Error    hot-unplug of 'nvme0' on VM 'qmpfaults': *(not running)
    ...    Hot Unplug NVMe Device    ${VM}    nvme0
    Run Keyword And Expect Error    hot-plug of 'nvme0': cannot reach the guest*
    ...    Hot Plug NVMe Device    ${VM}    nvme0
    Run Keyword And Expect Error    cannot put namespace node 'nvme0n1'*(not running)
    ...    Set IO Throttle    ${VM}    nvme0    iops=100


*** Keywords ***
Launch Fault VM
    [Documentation]    One VM with a 256 MiB namespace for the suite.
    ${vm}    Launch NVMe VM    name=qmpfaults    size=256M
    VAR    ${VM}    ${vm}    scope=SUITE

Controller Should Be Gone
    [Documentation]    Fail until QEMU reported the controller deleted.
    ${events}    Get QMP Events    ${VM}    DEVICE_DELETED
    Should Not Be Empty    ${events}

Namespace Should Be Usable
    [Documentation]    Fail unless the guest shows the namespace of nvme0.
    ${devices}    Get VM Guest Devices    ${VM}
    Should Not Be Empty    ${devices}

Run In Guest
    [Documentation]    Run ${command} in the guest of ${VM}; fail unless it exits 0.
    [Arguments]    ${command}
    Open Connection To VM    ${VM}
    TRY
        ${out}    ${rc}    Execute Command    ${command}    return_rc=True    return_stderr=False
    FINALLY
        Close Connection
    END
    Should Be Equal As Integers    ${rc}    0    '${command}' failed in the guest: ${out}
