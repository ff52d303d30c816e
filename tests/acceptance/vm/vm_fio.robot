*** Settings ***
Documentation    fio in the guest through resources/vm.resource: foreground and background runs, the
...              same result model as on the host, and a fio that sees its device unplugged.

Library          OperatingSystem
Resource         ../../../resources/vm.resource

Suite Setup      Launch Fio VM

Test Tags        vm    acceptance    fio


*** Variables ***
${VM}    ${None}


*** Test Cases ***
Foreground Run Returns The Result Model
    [Documentation]    Run Fio Job On VM returns FioLibrary's result with the run folder filled.
    ${result}    Run Fio Job On VM    ${VM}    latency_probe    runtime=3    size=64m
    Fio Result Should Meet Thresholds    ${result}    profile=emulated
    OperatingSystem.File Should Exist    ${result.artifacts.json}
    OperatingSystem.File Should Exist    ${result.artifacts.job_file}
    ${iops}    Get Fio Metric    ${result}    iops
    Should Be True    ${iops} > 0

Background Run Sees The Device Unplugged
    [Documentation]    fio runs while the controller is unplugged over QMP: it ends with EIO, which
    ...    Wait For Fio Job On VM reports with allow_errors; the device comes back with device_add.
    ${fio}    Start Fio Job On VM    ${VM}    mixed_randrw    runtime=8    size=64m
    Sleep    3s
    Execute QMP Command    ${VM}    device_del    id=nvme0
    Wait For QMP Event    ${VM}    DEVICE_DELETED    timeout=20    device=nvme0
    ${result}    Wait For Fio Job On VM    ${fio}    allow_errors=True
    Should Be Equal As Integers    ${result.jobs[0].error}    5
    ${args}    Evaluate    $VM.controllers[0].device_add_arguments()
    Execute QMP Command    ${VM}    device_add    arguments=${args}
    Wait Until VM Is Ready    ${VM}    timeout=30

A Timeout Guards A Guest Run
    [Documentation]    timeout= guards the run instead of landing in the job file: a job planned for
    ...    30 s is stopped after 2 s and fails in one line, leaving no fio in the guest; a run within
    ...    its timeout is ended by the guest's own limit, planned time + ${VM_FIO_MARGIN} s.
    Run Keyword And Expect Error    fio job 'latency_probe' in VM 'fio' still ran after 2 s and was stopped*
    ...    Run Fio Job On VM    ${VM}    latency_probe    runtime=30    size=64m    timeout=2s
    No Fio Should Run In The Guest
    ${result}    Run Fio Job On VM    ${VM}    latency_probe    runtime=2    size=64m    timeout=1 min
    ${command}    OperatingSystem.Get File    ${result.artifacts.directory}${/}command.txt
    Should Match    ${command}    ssh fio: cd /tmp/fio.* && timeout 122 fio *job.fio >fio.stdout 2>fio.stderr\n


*** Keywords ***
No Fio Should Run In The Guest
    [Documentation]    Fail if an fio process runs in the guest of ${VM}.
    Open Connection To VM    ${VM}
    TRY
        ${out}    ${rc}    Execute Command    pidof fio    return_rc=True
    FINALLY
        Close Connection
    END
    Should Be Equal As Integers    ${rc}    1    fio still runs in the guest: ${out}

Launch Fio VM
    [Documentation]    One VM for the suite.
    ${vm}    Launch NVMe VM    name=fio    size=256M
    VAR    ${VM}    ${vm}    scope=SUITE
