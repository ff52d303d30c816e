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


*** Keywords ***
Launch Fio VM
    [Documentation]    One VM for the suite.
    ${vm}    Launch NVMe VM    name=fio    size=256M
    VAR    ${VM}    ${vm}    scope=SUITE
